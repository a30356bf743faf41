"""Dataset tab: layers -> pairs through `project.dataset.add`, the pair table, folder import."""

from __future__ import annotations

import numpy as np
import pytest

from napari_training_assistant.napari.session import ProjectSession
from napari_training_assistant.napari.tabs.dataset_tab import DatasetTab
from napari_training_assistant.project import DatasetError
from napari_training_assistant.project.folder_import import find_folder_pairs
from napari_training_assistant.project.label_maps import parse_label_map

pytestmark = pytest.mark.qt

TINY = {"preset": "tiny_unet"}


def _image(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)


def _mask(shape):
    mask = np.zeros(shape, np.uint8)
    mask[..., 4:12, 4:12] = 1
    mask[..., 16:20, 16:24] = 2
    return mask


def _incoming(folder, masks: dict[str, str]):
    """`folder/images/NAME.tif` (32x32, seeds in order) and `folder/masks/<masks[NAME]>` for each name."""
    from napari_training_assistant.project.image_io import write_tiff

    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for seed, (name, mask_name) in enumerate(masks.items()):
        write_tiff(folder / "images" / f"{name}.tif", _image((32, 32), seed))
        write_tiff(folder / "masks" / mask_name, _mask((32, 32)))
    return folder


@pytest.fixture
def setup(make_napari_viewer, qtbot, tmp_path):
    def _setup(**create):
        viewer = make_napari_viewer()
        session = ProjectSession()
        create.setdefault("architecture", TINY)
        session.create(tmp_path / "proj", "proj", **create)
        tab = DatasetTab(viewer, session)
        qtbot.addWidget(tab)
        return viewer, session, tab

    return _setup


def _is_error(tab) -> bool:
    return "ff6b6b" in tab.message.styleSheet()


def test_add_pair_from_layers(setup):
    viewer, session, tab = setup()
    assert tab.image_combo.count() == 0 and tab.mask_combo.count() == 0
    viewer.add_image(_image((32, 32)), name="raw")
    viewer.add_labels(_mask((32, 32)), name="cells")
    viewer.add_points(np.zeros((1, 2)), name="not a choice")
    assert [tab.image_combo.itemText(i) for i in range(tab.image_combo.count())] == ["raw"]
    assert [tab.mask_combo.itemText(i) for i in range(tab.mask_combo.count())] == ["cells"]
    assert tab.channel_axis.currentData() is None  # grayscale: no channel axis

    tab.split_combo.setCurrentText("val")
    record = tab.add_pair()

    assert record is not None and not _is_error(tab)
    assert record.pair_id in tab.message.text() and "mask > 0 -> 1" in tab.message.text()
    [stored] = session.project.dataset.pairs
    assert (stored.image_layer, stored.mask_layer, stored.source, stored.split) == ("raw", "cells", "manual", "val")
    assert tab.table.rowCount() == 1
    assert [tab.table.item(0, c).text() for c in range(6)] == [record.pair_id, "val", "32x32", "raw / cells", "manual", "-"]
    assert not tab.table.item(0, 0).icon().isNull()  # a thumbnail of image and mask

    viewer.layers["cells"].name = "renamed"  # combos follow the viewer
    assert tab.mask_combo.currentText() == "renamed"
    viewer.layers.remove("renamed")
    assert tab.mask_combo.count() == 0
    assert tab.add_pair() is None and _is_error(tab)


def test_stack_with_2d_mask_needs_the_slice(setup):
    viewer, session, tab = setup()
    viewer.add_image(_image((5, 32, 32)), name="stack")
    viewer.add_labels(_mask((32, 32)), name="plane")
    viewer.dims.set_current_step(0, 3)
    assert tab.slice_check.isEnabled() and not tab.slice_check.isChecked()
    assert tab.slice_spin.value() == 3  # follows the viewer's slice
    assert "one slice" in tab.shape_hint.text()

    assert tab.add_pair() is None
    assert _is_error(tab) and "slice_index" in tab.message.text() and "one slice" in tab.message.text()
    assert "\n" not in tab.message.text()
    assert len(session.project.dataset) == 0

    tab.slice_check.setChecked(True)
    record = tab.add_pair()
    assert record is not None and record.slice_index == 3 and record.image_shape == [32, 32]
    assert "slice 3" in tab.message.text()


def test_rgb_layer_declares_last_channel_axis(setup):
    viewer, session, tab = setup(architecture={**TINY, "input_channels": 3})
    viewer.add_image(_image((32, 32, 3)), name="rgb", rgb=True)
    viewer.add_labels(_mask((32, 32)), name="mask")
    assert tab.channel_axis.currentData() == -1
    record = tab.add_pair()
    assert record is not None, tab.message.text()
    assert record.image_shape == [3, 32, 32] and record.image_channels == 3


def test_multichannel_without_declared_axis_is_refused(setup):
    viewer, session, tab = setup(architecture={**TINY, "input_channels": 2})
    viewer.add_image(_image((2, 32, 32)), name="two channels")
    viewer.add_labels(_mask((32, 32)), name="mask")
    assert tab.channel_axis.currentData() is None  # never guessed
    assert tab.add_pair() is None and "channel_axis=0" in tab.message.text()
    tab.channel_axis.setCurrentIndex(tab.channel_axis.findData(0))
    assert not tab.slice_check.isEnabled()  # with the channel axis declared it is a 2D image
    assert tab.add_pair().image_channels == 2


def test_target_class_and_label_map(setup):
    viewer, session, tab = setup(output_mode="multiclass", num_classes=3, class_names=["background", "nucleus", "cell"])
    viewer.add_image(_image((32, 32)), name="raw")
    viewer.add_labels(_mask((32, 32)), name="mask")
    tab.mask_mode.setCurrentText("target-class")
    assert tab.target_class.isVisibleTo(tab) and not tab.label_map.isVisibleTo(tab)
    assert [tab.target_class.itemText(i) for i in range(tab.target_class.count())] == ["nucleus", "cell"]
    tab.target_class.setCurrentText("cell")
    record = tab.add_pair()
    assert record.saved_labels == [0, 2] and record.target_class_name == "cell"

    tab.mask_mode.setCurrentText("label-map")
    tab.label_map.setText("1:2,2:x")
    assert tab.add_pair() is None and "2:x" in tab.message.text()
    tab.label_map.setText("1:2,2:1")
    assert tab.add_pair().saved_labels == [0, 1, 2]
    assert tab.table.rowCount() == 2


def test_remove_and_split_change(setup):
    viewer, session, tab = setup()
    viewer.add_image(_image((32, 32)), name="raw")
    viewer.add_labels(_mask((32, 32)), name="mask")
    ids = []
    for seed in range(3):  # three different images: an identical pair is refused as a duplicate
        viewer.layers["raw"].data = _image((32, 32), seed)
        ids.append(tab.add_pair().pair_id)
    assert tab.table.rowCount() == 3

    tab.select_pairs(ids[:2])
    assert tab.selected_pair_ids() == ids[:2]
    assert tab.set_split_of_selected("benchmark") == ids[:2]
    assert [session.project.dataset.get(i).split for i in ids[:2]] == ["benchmark", "benchmark"]
    assert session.project.dataset.get(ids[0]).split_assigned_by == "user"
    assert tab.table.item(0, 1).text() == "benchmark"

    tab.select_pairs([ids[1]])
    assert tab.remove_selected(confirm=False) == [ids[1]]
    assert session.project.dataset.ids() == [ids[0], ids[2]]
    assert tab.table.rowCount() == 2
    tab.table.clearSelection()
    assert tab.remove_selected(confirm=False) == [] and _is_error(tab)


def test_import_folder_in_worker(setup, qtbot, tmp_path):
    from napari_training_assistant.project.image_io import write_tiff

    viewer, session, tab = setup()
    folder = _incoming(tmp_path / "incoming", {"a": "a.tif", "b": "b_mask.tif"})
    write_tiff(folder / "images" / "lonely.tif", _image((32, 32)))
    found = find_folder_pairs(folder)
    assert [(i.name, m.name) for i, m in found.pairs] == [("a.tif", "a.tif"), ("b.tif", "b_mask.tif")]
    assert found.images_without_mask == ["lonely.tif"]

    worker = tab.import_folder(folder)
    assert worker is not None and not tab.import_button.isEnabled()
    qtbot.waitUntil(lambda: tab.import_button.isEnabled(), timeout=20000)

    assert "Imported 2 pair(s)" in tab.message.text() and "lonely.tif" in tab.message.text()
    assert tab.table.rowCount() == 2
    records = session.project.dataset.pairs
    assert {r.source for r in records} == {"imported"}
    assert records[1].source_files["mask"].endswith("b_mask.tif")

    assert tab.import_folder(tmp_path / "nothing here") is None
    assert _is_error(tab) and "images/" in tab.message.text()


def test_import_folder_adds_nothing_when_a_pair_is_bad_and_skips_duplicates(setup, qtbot, tmp_path):
    from napari_training_assistant.project.image_io import write_tiff

    viewer, session, tab = setup()
    folder = _incoming(tmp_path / "incoming", {"a": "a_labels.tif", "b": "b_labels.tif"})
    (folder / "masks" / "b_labels.tif").write_bytes(b"junk")
    tab.import_folder(folder)
    qtbot.waitUntil(lambda: tab.import_button.isEnabled(), timeout=20000)
    assert _is_error(tab) and "nothing was added" in tab.message.text() and "b_labels.tif" in tab.message.text()
    assert session.project.dataset.pairs == []

    write_tiff(folder / "masks" / "b_labels.tif", _mask((32, 32)))
    tab.import_folder(folder)
    qtbot.waitUntil(lambda: tab.import_button.isEnabled(), timeout=20000)
    assert "Imported 2 pair(s)" in tab.message.text() and tab.table.rowCount() == 2
    tab.import_folder(folder)
    qtbot.waitUntil(lambda: tab.import_button.isEnabled(), timeout=20000)
    assert "Imported 0 pair(s); 2 already in the dataset skipped (a.tif = pair_0001, ...)" in tab.message.text()


def test_an_empty_label_map_is_refused_naming_the_field(setup):
    viewer, session, tab = setup(output_mode="multiclass", num_classes=3, class_names=["background", "nucleus", "cell"])
    viewer.add_image(_image((32, 32)), name="raw")
    viewer.add_labels(_mask((32, 32)), name="mask")
    tab.mask_mode.setCurrentText("label-map")
    tab.label_map.setText(" ")
    assert tab.add_pair() is None and _is_error(tab) and "label_map is empty" in tab.message.text()
    assert session.project.dataset.pairs == []


def test_a_multiscale_layer_adds_its_full_resolution(setup):
    from napari_training_assistant.napari.layer_choice import image_data

    viewer, session, tab = setup()
    image = _image((64, 64))
    layer = viewer.add_image([image, image[::2, ::2]], multiscale=True, name="pyramid")
    viewer.add_labels([_mask((64, 64)), _mask((32, 32))], multiscale=True, name="mask pyramid")
    assert image_data(layer) is layer.data[0]
    assert tab.add_pair().image_shape == [64, 64]


def test_layer_names_restored_on_reopen(setup, tmp_path):
    viewer, session, tab = setup()
    viewer.add_image(_image((32, 32)), name="raw")
    viewer.add_image(_image((32, 32), seed=1), name="other")
    viewer.add_labels(_mask((32, 32)), name="mask")
    viewer.add_labels(_mask((32, 32)), name="mask 2")
    tab.image_combo.setCurrentText("raw")
    tab.mask_combo.setCurrentText("mask")
    assert tab.add_pair() is not None  # a successful add remembers the layers
    assert session.project.config.ui.selected_layers == {"dataset.image": "raw", "dataset.mask": "mask"}

    session.close()
    tab.image_combo.setCurrentText("other")
    tab.mask_combo.setCurrentText("mask 2")
    session.open(tmp_path / "proj")
    assert (tab.image_combo.currentText(), tab.mask_combo.currentText()) == ("raw", "mask")

    # remembered layers that appear after opening are selected when they arrive
    session.close()
    viewer.layers.remove("raw")
    session.open(tmp_path / "proj")
    assert tab.image_combo.currentText() == "other"
    viewer.add_image(_image((32, 32)), name="raw")
    assert tab.image_combo.currentText() == "raw"


def test_parse_label_map():
    assert parse_label_map("1:1, 2:1,5:2") == {1: 1, 2: 1, 5: 2}
    for bad in ("", "1", "a:1"):
        with pytest.raises(DatasetError):
            parse_label_map(bad)


def test_disabled_without_project(make_napari_viewer, qtbot):
    tab = DatasetTab(make_napari_viewer(), ProjectSession())
    qtbot.addWidget(tab)
    assert not tab.isEnabled() and "Open or create" in tab.message.text()


def _semantic(shape=(32, 32)):
    """Four separate blobs that all share id 1: a semantic mask, not one id per object."""
    mask = np.zeros(shape, np.uint8)
    for y, x in ((2, 2), (2, 20), (20, 2), (20, 20)):
        mask[y : y + 6, x : x + 6] = 1
    return mask


def test_a_semantic_mask_in_an_instance_project_is_added_with_its_warning_shown(setup, qtbot, tmp_path):
    from napari_training_assistant.project.image_io import write_tiff

    viewer, session, tab = setup(output_mode="instance")
    viewer.add_image(_image((32, 32)), name="raw")
    viewer.add_labels(_semantic(), name="blobs")
    shown = []
    from napari.utils.notifications import notification_manager

    notification_manager.notification_ready.connect(lambda n: shown.append(n.message))

    record = tab.add_pair()

    assert record is not None and record.mask_mode == "instance"
    assert [p.pair_id for p in session.project.dataset.pairs] == [record.pair_id]  # added all the same
    text = tab.message.text()
    assert text.startswith(f"Added {record.pair_id}") and "Warning:" in text and "semantic mask" in text and "\n" not in text
    assert not _is_error(tab) and "e0a030" in tab.message.styleSheet()
    assert any("semantic mask" in message for message in shown)

    viewer.layers["blobs"].data = _mask((32, 32))  # one id per object: no warning
    viewer.layers["raw"].data = _image((32, 32), seed=5)
    record = tab.add_pair()
    assert record is not None and "Warning" not in tab.message.text() and "e0a030" not in tab.message.styleSheet()

    folder = tmp_path / "incoming"  # folder import: the warning of its pairs too
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    write_tiff(folder / "images" / "a.tif", _image((32, 32), seed=7))
    write_tiff(folder / "masks" / "a.tif", _semantic())
    tab.import_folder(folder)
    qtbot.waitUntil(lambda: tab.import_button.isEnabled(), timeout=20000)
    assert "Imported 1 pair(s)" in tab.message.text() and "semantic mask" in tab.message.text()


def test_layer_choices_follow_the_layer_just_added(setup):
    """A newly added image or labels layer becomes the choice, and its partner by name the other (issue 17)."""
    from napari_training_assistant.napari.layer_choice import pairs_with

    viewer, _, tab = setup()
    viewer.add_image(_image((32, 32)), name="cells")
    viewer.add_labels(_mask((32, 32)), name="cells labels")
    viewer.add_image(_image((32, 32), seed=1), name="nuclei")
    assert (tab.image_combo.currentText(), tab.mask_combo.currentText()) == ("nuclei", "cells labels")  # no partner yet
    viewer.add_labels(_mask((32, 32)), name="nuclei_mask")
    assert (tab.image_combo.currentText(), tab.mask_combo.currentText()) == ("nuclei", "nuclei_mask")
    viewer.add_image(_image((32, 32), seed=2), name="cells 2")
    viewer.add_labels(_mask((32, 32)), name="cells labels")  # napari renames it "cells labels [1]": no partner
    assert tab.mask_combo.currentText() == "cells labels [1]" and tab.image_combo.currentText() == "cells 2"
    viewer.layers.selection.active = viewer.layers["cells"]
    viewer.add_image(_image((32, 32), seed=3), name="dapi")
    viewer.add_labels(_mask((32, 32)), name="dapi-seg")
    assert (tab.image_combo.currentText(), tab.mask_combo.currentText()) == ("dapi", "dapi-seg")
    assert pairs_with("cells", "Cells_Labels") and not pairs_with("cells", "cells") and not pairs_with("cells", "cellsX")


def test_duplicates_and_empty_masks_ask_before_they_are_added(setup, monkeypatch):
    """The same image and mask twice, or a mask with no labelled pixel: the tab asks; No adds nothing (issue 17)."""
    viewer, session, tab = setup()
    viewer.add_image(_image((32, 32)), name="raw")
    viewer.add_labels(_mask((32, 32)), name="raw labels")
    asked: list[str] = []
    answers = iter([False, True])
    monkeypatch.setattr(tab, "confirm", lambda question: asked.append(question) or next(answers))
    assert tab.add_pair() is not None and asked == []
    assert tab.add_pair() is None and "already in the dataset as pair_0001" in asked[0]
    assert "Not added" in tab.message.text() and not _is_error(tab) and len(session.project.dataset.pairs) == 1
    record = tab.add_pair()  # asked again, and this time yes
    assert record is not None and len(asked) == 2 and len(session.project.dataset.pairs) == 2

    viewer.add_labels(np.zeros((32, 32), np.uint8), name="blank")
    answers = iter([False])
    assert tab.mask_combo.currentText() == "blank"
    assert tab.add_pair() is None and "'blank' is empty" in asked[-1] and len(session.project.dataset.pairs) == 2


def test_thumbnail_shows_the_mask_over_the_image():
    from napari_training_assistant.napari.pair_thumbnails import thumbnail

    image = np.zeros((4, 96, 64), np.uint16)
    image[:, :, 32:] = 1000
    mask = np.zeros((4, 96, 64), np.uint8)
    mask[2, :10, :10] = 1
    rgb = thumbnail(image, mask, has_channels=False, size=48)
    assert rgb.shape == (48, 48, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (127, 0, 127)  # labelled: magenta over black
    assert tuple(rgb[20, 30]) == (255, 255, 255) and tuple(rgb[20, 5]) == (0, 0, 0)
    assert rgb[47, 40].sum() == 0  # beyond the 2x-strided 48 x 32 plane: the canvas
