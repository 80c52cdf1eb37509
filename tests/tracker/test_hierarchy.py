"""The object level above the ids: pieces of split ids and ids one segment keeps holding form one object."""

from __future__ import annotations

import numpy as np

from mastsam_splat.io.labels import map_ids
from mastsam_splat.matchers import make_matcher
from mastsam_splat.tracker import MastSAMTracker, TrackerConfig
from mastsam_splat.tracker.hierarchy import HierarchyConfig, ObjectGroups, contained_pairs
from mastsam_splat.tracker.tracker import _Run
from mastsam_splat.tracker.view_order import ViewOrder, ViewOrderConfig
from mastsam_splat.types import Frame

from support.altered_segmenters import CuttingSegmenter
from support.planar_scene import sequence

SLIDE = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]


def test_contained_pairs_are_ids_lying_inside_one_segment():
    labels = np.zeros((10, 30), dtype=np.int64)
    labels[:, 0:5], labels[:, 5:10], labels[:, 12:20], labels[:, 20:30] = 3, 4, 7, 8
    auto = np.zeros((10, 30), dtype=np.int64)
    auto[:, 0:10] = 1  # holds 3 and 4
    auto[:, 12:24] = 2  # holds 7, but only part of 8
    assert contained_pairs(labels, auto, containment=0.9, min_area=4) == {(3, 4)}
    assert contained_pairs(labels, auto, containment=0.9, min_area=100) == set()


def test_groups_join_after_enough_frames_and_follow_merges():
    groups = ObjectGroups(HierarchyConfig(frames=2))
    groups.observe({(3, 4)}, frame=0)
    assert groups.object_of([3, 4]) == {}
    groups.observe({(3, 4), (5, 6)}, frame=1)
    assert groups.object_of([3, 4, 5, 6]) == {4: 3}
    groups.join(4, 9)  # a piece split off id 4
    assert groups.object_of([3, 4, 9]) == {4: 3, 9: 3}
    lut = np.arange(12)
    lut[3] = 2  # id 3 merged into id 2
    lut[6] = 5
    groups.relabel(lut)
    assert groups.object_of([2, 4, 9]) == {4: 2, 9: 2}
    groups.observe({(5, 6)}, frame=2)  # (5, 6) became one id: nothing to join
    assert groups.object_of([5]) == {}
    off = ObjectGroups(HierarchyConfig(frames=0))
    off.observe({(1, 2)}, frame=0)
    off.observe({(1, 2)}, frame=1)
    assert off.object_of([1, 2]) == {}


def test_forgotten_ids_bring_no_object_along_into_a_merge():
    """Id 5, seen inside one segment with the background's id 1, is merged into id 3: followed plainly, the merge
    puts id 3 (and its object) into the background's object; with id 5 forgotten first, id 3 keeps its own links
    (with id 4) only."""

    def observed() -> ObjectGroups:
        groups = ObjectGroups(HierarchyConfig(frames=2))
        for frame in range(2):
            groups.observe({(1, 5), (3, 4)}, frame)
        groups.join(5, 7)  # a piece split off id 5
        return groups

    lut = np.arange(8)
    lut[5] = 3
    plain = observed()
    plain.relabel(lut)
    assert plain.object_of([1, 3, 4, 7]) == {3: 1, 4: 1, 7: 1}
    groups = observed()
    groups.forget([5])
    groups.relabel(lut)
    assert groups.object_of([1, 3, 4, 7]) == {4: 3}


def test_map_ids_replaces_only_the_mapped_ids():
    maps = [np.array([[0, 1], [2, 3]], np.uint16)]
    out = map_ids(maps, {3: 1})
    assert out[0].tolist() == [[0, 1], [2, 1]] and out[0].dtype == np.uint16
    assert map_ids(maps, {})[0] is maps[0]


def test_object_level_groups_the_pieces_the_segmenter_alternately_joins():
    frames = sequence(SLIDE)
    config = TrackerConfig(view_order=ViewOrderConfig(order="sequence"))
    result = MastSAMTracker(config, CuttingSegmenter(frames, cut=lambda index: index % 2 == 0), make_matcher("geometric"), "geometric").run(frames)
    objects = result.object_labels()
    whole = {int(np.bincount(x[f.gt == 2]).argmax()) for x, f in zip(objects, frames)}
    assert len(whole) == 1 and 0 not in whole, f"object 2 got object ids {whole}"
    for obj in (1, 3):  # the other objects are their own objects
        ids = {int(np.bincount(x[f.gt == obj]).argmax()) for x, f in zip(result.labels, frames) if (f.gt == obj).any()}
        assert len(ids) == 1 and ids.isdisjoint(result.object_of)
    # The ids keep the two halves apart (the part level), and without grouping so does the object level.
    assert all(len(set(np.unique(x[f.gt == 2]).tolist()) - {0}) == 2 for x, f in zip(result.labels, frames))
    config.hierarchy.frames = 0
    plain = MastSAMTracker(config, CuttingSegmenter(frames, cut=lambda index: index % 2 == 0), make_matcher("geometric"), "geometric").run(frames)
    assert plain.object_of == {}
    assert len(set(np.unique(plain.object_labels()[0][frames[0].gt == 2]).tolist()) - {0}) == 2


def test_ids_seen_together_in_few_of_their_common_frames_stay_apart():
    groups = ObjectGroups(HierarchyConfig(frames=2, share=0.25))
    groups.observe({(1, 5), (3, 4)}, frame=0)
    groups.observe({(1, 5), (3, 4)}, frame=1)
    # 1 (the surroundings) held 5 in 2 of the 20 frames showing both; 3 and 4 in 2 of their 4.
    frames_of = {1: set(range(20)), 5: set(range(20)), 3: {0, 1, 2, 3}, 4: {0, 1, 2, 3}}
    assert groups.object_of([1, 3, 4, 5], frames_of) == {4: 3}
    assert groups.object_of([1, 3, 4, 5]) == {4: 3, 5: 1}  # without the frames: the count alone decides
    groups.join(1, 5)  # a forced join (a split) holds whatever the frames say
    assert groups.object_of([1, 3, 4, 5], frames_of) == {4: 3, 5: 1}


def test_a_chain_of_small_ids_does_not_join_two_surfaces_into_one_object():
    # Ids 1 and 3 (two large surfaces) share 20 frames and never lie inside one segment; the small id 2 lay inside
    # one segment with each of them in 2 of the 8 frames showing both.
    frames_of = {1: set(range(20)), 3: set(range(20)), 2: set(range(8))}
    average = ObjectGroups(HierarchyConfig(frames=2, share=0.1))
    single = ObjectGroups(HierarchyConfig(frames=2, share=0.1, linkage="single"))
    for groups in (average, single):
        groups.observe({(1, 2), (2, 3)}, frame=0)
        groups.observe({(1, 2), (2, 3)}, frame=1)
    assert single.object_of([1, 2, 3], frames_of) == {2: 1, 3: 1}
    assert average.object_of([1, 2, 3], frames_of) == {2: 1}
    # Once 1 and 3 often lie inside one segment too, the pooled pairs join all three.
    for frame in range(4):
        average.observe({(1, 3)}, frame)
    assert average.object_of([1, 2, 3], frames_of) == {2: 1, 3: 1}


def test_merged_ids_count_each_frame_of_their_pairs_once():
    # Part 4 of an object carried ids 4 (frames 0-4) and 6 (frames 5-9), merged after the sequence; each lay inside
    # one segment with part 3 in 2 of its 5 frames: the merged id in 4 of the 10 frames showing both.
    groups = ObjectGroups(HierarchyConfig(frames=2, share=0.4))
    for frame in (1, 3):
        groups.observe({(3, 4)}, frame)
    for frame in (6, 8):
        groups.observe({(3, 6)}, frame)
    groups.observe({(3, 4), (3, 6)}, frame=4)  # (both in one frame: that frame counts once)
    frames_of = {3: set(range(10)), 4: set(range(10))}
    lut = np.arange(8)
    lut[6] = 4
    groups.relabel(lut)
    assert groups._times_seen((3, 4)) == 5
    assert groups.object_of([3, 4], frames_of) == {4: 3}  # 5 of 10 >= 0.4 (the larger count alone, 3 of 10, is not)


def test_the_object_level_reads_the_finished_labels_and_their_segments():
    """Ids 1 and 2 lie inside segment 1 of both finished frames, id 3 fills segment 2; pairs counted while the
    sequence ran (here 1 with 3, in both frames) are not what the segmenter shows of the finished labels."""
    frames = [Frame(image=np.zeros((8, 8, 3), dtype=np.uint8), name=f"f{i}", index=i) for i in range(2)]
    run = _Run(MastSAMTracker(TrackerConfig(), None, None), frames, "depth", ViewOrder([0, 1], {0: None, 1: 0}, "cameras"))
    labels = np.full((8, 8), 3, dtype=np.uint16)
    labels[:4, :4], labels[4:, :4] = 1, 2
    auto = np.full((8, 8), 2, dtype=np.uint16)
    auto[:, :4] = 1
    for t in range(2):
        run.labels[t] = labels
        run.segments[t] = auto
        run.groups.observe({(1, 3)}, t)
    assert run.object_map() == {2: 1}
    for t in range(2):  # one segment holding all three ids in both frames: one object
        run.segments[t] = np.ones_like(auto)
    assert run.object_map() == {2: 1, 3: 1}
