"""Who a face is, at registry scale: the matcher's rule against the plain threshold.

    .venv/bin/python bench/registry_identification.py [--sizes 100000 1000000] [--photos 1 3]
        [--real] [--out FILE.json]

Two rules decide whether a face is an enrolled person:
- plain: its nearest enrolled photo is within REGISTRY_MATCH;
- margin (what the matcher does, ``waakhond.consent.matcher.identify``): that, and the nearest
  other enrolled face is at least 1/MARGIN times farther (enrolments within SAME_FACE of each
  other count as one face).
Reported per rule: TAR, the share of new photos of enrolled people identified as themselves,
and strangers accepted, the share of faces of people not enrolled identified as anybody.

Synthetic (bench/face_index.py's model of dlib embeddings): n people enrolled with P photos
each, 200 new photos of enrolled people, 200 strangers. 100 of the queried people are also
enrolled a second time with copies of their photos, as someone masking them would: TAR is
also given for those.

Real (--real; ../shared/data/faces, through the production face detector and embedder):
- strangers: every FairFace face enrolled on its own, each looked up against all the others;
- genuine: each deepface identity enrolled with all its photos but one (identities from the
  labelled pairs of master.csv and face-recognition-pivot.csv), in a registry with all the
  FairFace faces; the photo left out is looked up.
A few hundred faces is far from a million: the real figures check the rule on real
embeddings; the synthetic ones show how it scales.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from face_index import Faces, machine

from waakhond.consent.index import FaceIndex
from waakhond.consent.matcher import MARGIN, NEIGHBOURS, SAME_FACE, identify
from waakhond.signals.identity import REGISTRY_MATCH

GENUINE = STRANGERS = 200
COPIED = 100
FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"


class Owners(Mapping[int, int]):
    """Embedding id -> enrolment, as an array (a dict of millions of ints is slow to build)."""

    def __init__(self, owner: np.ndarray) -> None:
        self.owner = owner

    def __getitem__(self, vector_id: int) -> int:
        if not 0 <= vector_id < len(self.owner):
            raise KeyError(vector_id)
        return int(self.owner[vector_id])

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.owner)))

    def __len__(self) -> int:
        return len(self.owner)


class Registry:
    """An index of enrolled photos and who each belongs to."""

    def __init__(self, vectors: np.ndarray, owner: np.ndarray) -> None:
        self.index = FaceIndex()
        self.index.add(np.arange(len(vectors)), vectors)
        self.owners = Owners(owner)

    def plain(self, queries: np.ndarray) -> list[set[int]]:
        return [{self.owners[hits[0][0]]} if hits else set()
                for hits in self.index.search(queries, REGISTRY_MATCH)]

    def margin(self, queries: np.ndarray) -> list[set[int]]:
        found = self.index.search(queries, REGISTRY_MATCH / MARGIN, NEIGHBOURS)
        return [set(who.enrolments) if (who := identify(hits, self.owners, self.index))
                else set() for hits in found]


def rates(registry: Registry, genuine: np.ndarray, owners: list[set[int]],
          strangers: np.ndarray) -> dict[str, Any]:
    """TAR (identified as one of their own enrolments) and strangers accepted, per rule."""
    out = {}
    for rule in ("plain", "margin"):
        decide = getattr(registry, rule)
        hits = sum(bool(found & own) for found, own in zip(decide(genuine), owners, strict=True))
        accepted = sum(bool(found) for found in decide(strangers)) if len(strangers) else 0
        out[rule] = {"tar": round(hits / max(len(genuine), 1), 4),
                     "strangers_accepted": round(accepted / max(len(strangers), 1), 4)}
    return out


def synthetic(n: int, photos: int) -> dict[str, Any]:
    faces = Faces(seed=1)
    centres = faces.identities(n)
    enrolled = np.concatenate([faces.photos(centres) for _ in range(photos)])
    owner = np.tile(np.arange(n), photos)
    queried = faces.rng.choice(n, GENUINE, replace=False)
    copied = queried[:COPIED]  # enrolled again, as enrolments n .. n + COPIED - 1
    copies = enrolled.reshape(photos, n, -1)[:, copied].reshape(-1, enrolled.shape[1])
    registry = Registry(np.concatenate((enrolled, copies)),
                        np.concatenate((owner, np.tile(n + np.arange(COPIED), photos))))
    genuine = faces.photos(centres[queried])
    own = [{int(person)} for person in queried]
    return {"n": n, "photos_per_person": photos,
            **rates(registry, genuine, own, faces.photos(faces.identities(STRANGERS))),
            "copied_tar": rates(registry, genuine[:COPIED], own[:COPIED],
                                np.empty((0, enrolled.shape[1])))}


def real() -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).parent))
    from face_verification import Pipeline, identities, image_faces, read_pairs

    from waakhond.intake import decode_image

    pipeline = Pipeline.load()

    def embedded(folder: Path) -> dict[str, np.ndarray]:
        out = {}
        for path in sorted(folder.glob("*.jpg")):
            found = image_faces(path.name, *pipeline.run(decode_image(path.read_bytes())))
            if found.main is not None:
                out[path.name] = found.main
        return out

    strangers = np.stack(list(embedded(FACES / "fairface").values()))
    deepface = embedded(FACES / "deepface")
    labels = identities([pair for name in ("master.csv", "face-recognition-pivot.csv")
                         for pair in read_pairs(FACES / "deepface" / name)])
    people: dict[str, list[str]] = {}
    for name in sorted(set(labels) & set(deepface)):
        people.setdefault(labels[name], []).append(name)
    people = {who: names for who, names in people.items() if len(names) >= 2}
    return {"fairface_strangers": len(strangers), **leave_one_out(strangers),
            "deepface": genuine_held_out(strangers, deepface, people)}


def leave_one_out(strangers: np.ndarray) -> dict[str, Any]:
    """Each FairFace face against all the others, enrolled one photo each."""
    accepted = {"plain": 0, "margin": 0}
    for left_out in range(len(strangers)):
        others = np.delete(strangers, left_out, axis=0)
        registry = Registry(others, np.arange(len(others)))
        for rule in accepted:
            accepted[rule] += bool(getattr(registry, rule)(strangers[left_out:left_out + 1])[0])
    return {f"{rule}_strangers_accepted": round(count / len(strangers), 4)
            for rule, count in accepted.items()}


def genuine_held_out(strangers: np.ndarray, deepface: dict[str, np.ndarray],
                     people: dict[str, list[str]]) -> dict[str, Any]:
    """Per photo of a deepface identity: the rest of them enrolled beside every FairFace face
    and every other identity; is the photo identified as its person?"""
    found = {"plain": 0, "margin": 0}
    tried = 0
    number = {who: i for i, who in enumerate(people, len(strangers))}  # enrolment per person
    for who, names in people.items():
        for held_out in names:
            vectors, owner = [strangers], [np.arange(len(strangers))]
            for other, photos in people.items():
                kept = [deepface[name] for name in photos if name != held_out]
                vectors.append(np.stack(kept))
                owner.append(np.full(len(kept), number[other]))
            registry = Registry(np.concatenate(vectors), np.concatenate(owner))
            for rule in found:
                answer = getattr(registry, rule)(deepface[held_out][None, :])[0]
                found[rule] += number[who] in answer
            tried += 1
    return {"identities": len(people), "photos": tried,
            **{f"{rule}_tar": round(count / tried, 4) for rule, count in found.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--photos", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--real", action="store_true", help="also the real-face figures")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report: dict[str, Any] = {"machine": machine(), "margin": MARGIN, "same_face": SAME_FACE,
                              "threshold": REGISTRY_MATCH, "synthetic": []}
    for n in args.sizes:
        for photos in args.photos:
            report["synthetic"].append(synthetic(n, photos))
            print(json.dumps(report["synthetic"][-1]), flush=True)
    if args.real:
        report["real"] = real()
        print(json.dumps(report["real"]), flush=True)
    report["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
