"""The pet lifecycle rules: which status changes staff may request, and which follow by themselves."""

from __future__ import annotations

STATUSES = (
    "new", "in_quarantine", "healthy", "available", "pending",
    "adopted", "ill", "under_treatment", "recovered",
)  # fmt: skip

# (from, to) -> what the change means
REQUESTABLE: dict[tuple[str, str], str] = {
    ("in_quarantine", "healthy"): "cleared quarantine",
    ("healthy", "ill"): "fell ill",
    ("in_quarantine", "ill"): "fell ill",
    ("available", "ill"): "fell ill",
    ("healthy", "available"): "ready for adoption",
    ("ill", "under_treatment"): "treatment started",
    ("under_treatment", "recovered"): "recovered",
    ("recovered", "healthy"): "healthy again",
    ("available", "pending"): "adoption applied",
    ("pending", "adopted"): "adoption completed",
    ("pending", "available"): "application withdrawn",
}

# after arriving in the first status, the pet moves on to the second in the same run
AUTOMATIC: dict[str, str] = {
    "healthy": "available",
    "ill": "under_treatment",
    "recovered": "healthy",
}

# the feeding reminder completing moves a new pet into quarantine
ON_FEEDING_DONE: tuple[str, str] = ("new", "in_quarantine")


def can_request(current: str, requested: str) -> bool:
    return (current, requested) in REQUESTABLE


def rejection(current: str, requested: str) -> str:
    return f"cannot change from {current} to {requested}"


def follow_ups(status: str) -> list[str]:
    """The automatic chain from `status`: healthy → available; ill → under_treatment;
    recovered → healthy → available."""
    chain: list[str] = []
    while status in AUTOMATIC and len(chain) < len(AUTOMATIC):
        status = AUTOMATIC[status]
        chain.append(status)
    return chain
