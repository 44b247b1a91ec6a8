"""Reports of suspected crimes (DSA Art. 18): packages to download, and NCMEC's CyberTipline."""

from waakhond.reports.cybertipline import (
    CyberTiplineClient,
    ReportFile,
    ReportingPerson,
    ReportSubmissionError,
    SubmittedReport,
)
from waakhond.reports.package import (
    EUROPOL,
    LAW_ENFORCEMENT,
    NCMEC,
    CaseFacts,
    Channel,
    Destination,
    ReportError,
    UserLocator,
    build_package,
    choose_destination,
    export,
    facts_from_package,
)

__all__ = [
    "EUROPOL", "LAW_ENFORCEMENT", "NCMEC", "CaseFacts", "Channel", "CyberTiplineClient",
    "Destination", "ReportError", "ReportFile", "ReportSubmissionError", "ReportingPerson",
    "SubmittedReport", "UserLocator", "build_package", "choose_destination", "export",
    "facts_from_package",
]
