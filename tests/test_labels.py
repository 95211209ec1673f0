"""ImageNet-1k labels: order, names and WordNet ids checked against REFERENCE.md's Imagenette table."""

from __future__ import annotations

from reference import IMAGENETTE

from poolformer.labels import imagenet_class_names, imagenet_wnids, wnid_to_imagenet_index


def test_table_has_1000_distinct_wnids_in_index_order() -> None:
    wnids, names = imagenet_wnids(), imagenet_class_names()
    assert len(wnids) == len(names) == 1000
    assert len(set(wnids)) == 1000 and all(w.startswith("n") and len(w) == 9 for w in wnids)
    assert wnids == sorted(wnids)  # ILSVRC-2012 orders its classes by WordNet id
    assert names[:3] == ["tench", "goldfish", "great white shark"] and names[-1] == "toilet tissue"


def test_imagenette_classes_map_to_their_imagenet_indices() -> None:
    to_index, names = wnid_to_imagenet_index(), imagenet_class_names()
    for wnid, (index, name) in IMAGENETTE.items():
        assert to_index[wnid] == index and names[index] == name


def test_repeated_short_names_are_the_two_known_imagenet_duplicates() -> None:
    names = imagenet_class_names()
    repeated = {name: [i for i, n in enumerate(names) if n == name] for name in names if names.count(name) > 1}
    assert repeated == {"crane": [134, 517], "maillot": [638, 639]}
