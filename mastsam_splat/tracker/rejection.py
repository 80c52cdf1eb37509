"""Rejection of ids that were lost in the new frame.

An id is dropped from a frame when too few of its representative points survived
propagation (it left the view or got occluded), or when the mask obtained from its prompts
does not contain enough of those prompts (the segmenter segmented something else), or when
that mask is empty, or when that mask is many times larger than the id was in the frame it was
carried from (the prompt leaked into a neighbouring segment, often the background: kept, the mask
would be a near-duplicate of the neighbour's and the id merged into it, its 3D evidence with it).
A dropped id still takes the segments its correspondences vote for (the segment consensus).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from mastsam_splat.errors import check_fraction, check_option
from mastsam_splat.tracker.propagation import TrackedPoints
from mastsam_splat.tracker.representatives import match_labels
from mastsam_splat.types import Mask


@dataclass
class RejectionConfig:
    """When a tracked id is dropped from the new frame."""

    min_tracked_points: int = 1
    """An id with fewer tracked points in the new frame is dropped there (it left the view or is occluded)."""
    min_survival: float = 0.2
    """An id keeping less than this fraction of its representatives is dropped."""
    min_prompt_support: float = 0.5
    """An id whose prompted mask holds less than this fraction of its positives is dropped."""
    max_growth: float = 4.0
    """An id whose prompted mask is more than this many times its area in the frame it was carried from is
    dropped there (the prompt leaked into a neighbour); 0 turns the check off."""

    def __post_init__(self) -> None:
        """Values out of range stop the command while its options are parsed."""
        check_option(
            self.min_tracked_points >= 0,
            "tracker.rejection.min-tracked-points",
            ">= 0",
            self.min_tracked_points,
        )
        check_fraction(self.min_survival, "tracker.rejection.min-survival")
        check_fraction(self.min_prompt_support, "tracker.rejection.min-prompt-support")
        check_option(
            self.max_growth == 0 or self.max_growth >= 1, "tracker.rejection.max-growth", "0 or >= 1", self.max_growth
        )


def prompt_support(mask: np.ndarray, positive: np.ndarray) -> float:
    """Fraction of the positive prompts [P, 2] that fall inside the boolean ``mask`` [H, W]."""
    if len(positive) == 0:
        return 0.0
    return np.count_nonzero(match_labels(mask, positive)) / len(positive)  # (the mask's own values: no integer copy)


def lost_before_prompting(tracked: TrackedPoints, config: RejectionConfig) -> Optional[str]:
    """Why an id cannot be prompted in the new frame (``None`` when it can)."""
    if len(tracked.points) < config.min_tracked_points:
        return "too few points"
    if tracked.survival < config.min_survival:
        return "too few points"
    return None


def lost_after_prompting(
    mask: Mask, positive: np.ndarray, config: RejectionConfig, min_area: int, previous_area: int = 0
) -> Optional[str]:
    """Why an id's prompted mask is not accepted (``None`` when it is); ``min_area`` is in pixels, ``previous_area``
    the id's pixels in the frame it was carried from (0: unknown, no growth check)."""
    if mask.area < min_area:
        return "empty mask"
    if prompt_support(mask.segmentation, positive) < config.min_prompt_support:
        return "prompts outside mask"
    if config.max_growth > 0 and previous_area > 0 and mask.area > config.max_growth * max(previous_area, min_area):
        return "mask leaked"
    return None
