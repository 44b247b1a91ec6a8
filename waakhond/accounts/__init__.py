"""People who work in the moderator console: accounts with roles, Argon2id password hashes,
lock-out after failed logins, and sessions with CSRF tokens."""

from waakhond.accounts.sessions import SessionInfo, Sessions
from waakhond.accounts.staff import Account, AccountError, Accounts, LoginFailed, Role

__all__ = ["Account", "AccountError", "Accounts", "LoginFailed", "Role", "SessionInfo",
           "Sessions"]
