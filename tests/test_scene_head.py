"""The scene-graph read-out of the vision tower, the 7 px / 4x4-merge "fine" backbone, and training
with the dense scene loss."""

from __future__ import annotations

import json

import pytest
import torch

from lame_tools.data.scene import COLOURS, SHAPES, Scene, SceneObject
from lame_tools.data.shapes import VOCABULARY, make_example, render
from lame_tools.image_batch import pixel_inputs
from lame_tools.model import LameModel
from lame_tools.scene_head import (
    NONE_COLOUR,
    NONE_SHAPE,
    SceneHead,
    border_sets,
    capture_vision,
    cell_labels,
    counts_from_logits,
    scene_head_loss,
    scene_readout,
)


def _scene(*objects: SceneObject) -> Scene:
    return Scene(objects=tuple(objects), width=112, height=112, background=(255, 255, 255), render_seed=1)


def test_cell_labels_put_each_object_in_the_cell_of_its_centre():
    scene = _scene(
        SceneObject("triangle", "red", "small", 0.1, 0.1),    # cell (0, 0)
        SceneObject("diamond", "blue", "large", 0.9, 0.6),    # cell (2, 3)
        SceneObject("circle", "green", "small", 0.95, 0.7),   # the same cell, drawn later: it wins
        SceneObject("square", "purple", "small", 1.0, 1.0),   # the edge belongs to the last cell
    )
    grid = torch.tensor([[1, 8, 8]])  # 8x8 patches, merged 2x2 -> 4x4 cells
    shape, colour = cell_labels([scene], grid, merge_size=2)
    assert shape.shape == (16,) and colour.shape == (16,)
    expected_shape = {0: "triangle", 2 * 4 + 3: "circle", 15: "square"}
    expected_colour = {0: "red", 2 * 4 + 3: "green", 15: "purple"}
    for cell in range(16):
        assert shape[cell] == (SHAPES.index(expected_shape[cell]) if cell in expected_shape else NONE_SHAPE)
        assert colour[cell] == (COLOURS.index(expected_colour[cell]) if cell in expected_colour else NONE_COLOUR)
    # a wide image: the grid is rows x columns of its own
    shape, _ = cell_labels([scene], torch.tensor([[1, 4, 8]]), merge_size=2)
    assert shape.shape == (8,) and shape[0] == SHAPES.index("triangle")
    assert shape[1 * 4 + 3] == SHAPES.index("square")  # circle and square share the last cell there


def test_border_sets_hold_the_cells_a_straddling_centre_touches():
    grid = torch.tensor([[1, 8, 8]])  # 4x4 cells of 0.25
    scene = _scene(
        SceneObject("triangle", "red", "small", 0.5 + 0.01, 0.125),   # on the border of columns 1 and 2
        SceneObject("circle", "blue", "small", 0.26, 0.74),           # near a corner: 4 cells
        SceneObject("square", "green", "small", 0.875, 0.875),        # inside its cell: no set
    )
    sets = border_sets([scene], grid, merge_size=2, margin=0.15)
    assert sets == [([1, 2], SHAPES.index("triangle"), COLOURS.index("red")),
                    ([8, 9, 12, 13], SHAPES.index("circle"), COLOURS.index("blue"))]
    # the offset of the second image's cells; a set whose cell another object claims is dropped
    crowded = _scene(SceneObject("triangle", "red", "small", 0.51, 0.125),
                     SceneObject("diamond", "purple", "small", 0.3, 0.1))  # its centre's cell is 1
    assert border_sets([scene, crowded], torch.tensor([[1, 8, 8], [1, 8, 8]]), 2, 0.15)[2:] == []
    assert border_sets([crowded, scene], torch.tensor([[1, 8, 8], [1, 8, 8]]), 2, 0.15)[0][0] == [17, 18]
    assert border_sets([scene], grid, 2, 0.0) == []


def test_the_border_loss_wants_exactly_one_cell_of_a_straddling_object():
    grid = torch.tensor([[1, 8, 8]])
    scene = _scene(SceneObject("triangle", "red", "small", 0.51, 0.125))  # cells 1 and 2
    head = SceneHead(4)
    with torch.no_grad():  # a head that reads one-hot "features": row 0 says triangle / red, row 1 none
        head.shape.weight.zero_(), head.shape.bias.zero_(), head.colour.weight.zero_(), head.colour.bias.zero_()
        head.shape.weight[SHAPES.index("triangle"), 0] = 20.0
        head.shape.weight[NONE_SHAPE, 1] = 20.0
        head.colour.weight[COLOURS.index("red"), 0] = 20.0
        head.colour.weight[NONE_COLOUR, 1] = 20.0
    none = torch.tensor([0.0, 1.0, 0.0, 0.0])
    obj = torch.tensor([1.0, 0.0, 0.0, 0.0])

    def tokens(*cells_with_object):
        return torch.stack([obj if c in cells_with_object else none for c in range(16)])

    def loss(t, margin):
        return float(scene_head_loss(head, t, grid, [scene], merge_size=2, border_margin=margin).detach())

    # with the margin, reading it in either cell is right, in both or in neither is wrong
    assert loss(tokens(1), 0.15) < 1e-3 and loss(tokens(2), 0.15) < 1e-3
    assert loss(tokens(1, 2), 0.15) > 0.5 and loss(tokens(), 0.15) > 0.5
    # without it, only the centre's cell (2) is right
    assert loss(tokens(2), 0.0) < 1e-3 and loss(tokens(1), 0.0) > 0.5
    # no straddling object: the same as plain cross-entropy
    inner = _scene(SceneObject("triangle", "red", "small", 0.6, 0.125))
    t = torch.randn(16, 4)
    torch.testing.assert_close(scene_head_loss(head, t, grid, [inner], 2, border_margin=0.15),
                               scene_head_loss(head, t, grid, [inner], 2))


def test_counts_from_logits_count_the_cells_that_name_a_shape_per_image():
    grids = torch.tensor([[1, 4, 4], [1, 4, 8]])  # merged 2x2: 4 cells, then 8
    logits = torch.zeros(12, len(SHAPES) + 1)
    logits[:, NONE_SHAPE] = 1.0  # every cell "none" ...
    for cell, shape in ((0, 0), (3, 2), (4, 1), (9, 3), (11, 0)):  # ... but these
        logits[cell, shape] = 2.0
    assert counts_from_logits(logits, grids, merge_size=2) == [2, 3]


@pytest.fixture(scope="module")
def fine_model():
    return LameModel.build_tiny("fine", num_reason_tokens=2, embed_dim=32, with_decoder=False, seed=0,
                                vocabulary=VOCABULARY, scene_head=True)


def test_the_fine_backbone_reads_16_tokens_merged_from_256_patches_of_7_px(fine_model):
    image = render(make_example(0, "test", 0).scene).resize((112, 112))
    vision = pixel_inputs(fine_model.processor.image_processor, [image])
    assert vision["image_grid_thw"].tolist() == [[1, 16, 16]]
    assert vision["pixel_values"].shape == (256, 3 * 2 * 7 * 7)
    assert fine_model.backbone.config.vision_config.patch_size == 7
    assert fine_model.processor.merge_size == 4
    batch = fine_model.processor([make_example(0, "test", 0).query_item(image)], [])
    assert int((batch["input_ids"] == fine_model.processor.image_token_id).sum()) == 16
    assert fine_model.encode([image]).shape == (1, 32)


def test_capture_records_the_merged_tokens_the_language_model_reads(fine_model):
    examples = [e for e in (make_example(0, "test", i) for i in range(10)) if e.query_has_image][:3]
    images = [render(e.scene) for e in examples]
    with torch.no_grad(), capture_vision(fine_model) as capture:
        fine_model.forward_items([e.query_item(im) for e, im in zip(examples, images)], "latent")
    tokens, grids = capture.take()
    assert capture.take() is None  # cleared
    cells = sum(h * w // 16 for _, h, w in grids.tolist())
    assert tokens.shape == (cells, fine_model.backbone.config.text_config.hidden_size) and len(grids) == 3
    vision = pixel_inputs(fine_model.processor.image_processor, images)
    with torch.no_grad():
        direct = fine_model.backbone.model.visual(vision["pixel_values"], grid_thw=vision["image_grid_thw"]).pooler_output
    torch.testing.assert_close(tokens, direct)
    assert grids.tolist() == vision["image_grid_thw"].tolist()
    # outside the block nothing is recorded any more
    with torch.no_grad():
        fine_model.forward_items([examples[0].query_item(images[0])], "latent")
    assert capture.take() is None


def test_the_scene_loss_teaches_the_head_and_the_readout_counts_every_object():
    torch.manual_seed(0)
    model = LameModel.build_tiny("micro", num_reason_tokens=0, embed_dim=16, with_decoder=False, seed=0,
                                 vocabulary=VOCABULARY, scene_head=True)
    scenes = [make_example(0, "train", i).scene for i in range(6)]
    images = [render(s) for s in scenes]
    vision = pixel_inputs(model.processor.image_processor, images)
    params = [*model.backbone.model.visual.parameters(), *model.scene_head.parameters()]
    model.eval()
    before = scene_readout(model, scenes, images)
    optimizer = torch.optim.Adam(params, lr=1e-2)
    losses = []
    for _ in range(80):
        tokens = model.backbone.model.visual(vision["pixel_values"], grid_thw=vision["image_grid_thw"]).pooler_output
        loss = scene_head_loss(model.scene_head, tokens, vision["image_grid_thw"], scenes, model.processor.merge_size)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    model.eval()
    readout = scene_readout(model, scenes, images)
    assert readout["objects"] == sum(len(s.objects) for s in scenes)
    # memorised: these are the scenes it trained on
    assert readout["colour"] >= before["colour"] + 0.3 and readout["shape"] > before["shape"], (before, readout)


def test_a_model_with_a_scene_head_saves_and_loads_it(fine_model, tmp_path):
    fine_model.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "lame_config.json").read_text())["scene_head"] is True
    loaded = LameModel.from_pretrained(tmp_path / "m")
    for name, tensor in fine_model.scene_head.state_dict().items():
        torch.testing.assert_close(loaded.scene_head.state_dict()[name], tensor)
    image = render(make_example(0, "test", 1).scene)
    torch.testing.assert_close(loaded.encode([image]), fine_model.encode([image]))
    assert loaded.processor.merge_size == 4


def test_the_shipped_model_has_a_scene_head_and_older_folders_load_without_one(shipped_model, micro_model, tmp_path):
    assert shipped_model.scene_head is not None and shipped_model.config.scene_head
    assert micro_model.scene_head is None
    # a folder written before the scene head existed has no "scene_head" key: it loads without one
    micro_model.save_pretrained(tmp_path / "old")
    config = json.loads((tmp_path / "old" / "lame_config.json").read_text())
    del config["scene_head"]
    (tmp_path / "old" / "lame_config.json").write_text(json.dumps(config))
    assert LameModel.from_pretrained(tmp_path / "old").scene_head is None
    with pytest.raises(ValueError, match="no scene head"):
        scene_readout(micro_model, [], [])


def test_training_with_the_scene_loss_logs_it_and_trains_the_head(tmp_path):
    from lame_tools.train import get_train_preset, train
    from lame_tools.train.build import parameter_groups

    config = get_train_preset("micro-scene")
    config.eval_every = config.total_steps
    result = train(config, tmp_path / "run", show_progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    # the vision tower (and so the scene loss) trains in stage 2 only here: stage 1 is latent,decoder
    assert all(("scene" in row) == (row["stage"] == 2) for row in rows)
    assert "val_scene_shape" in rows[-1] and 0.0 <= rows[-1]["val_scene_colour"] <= 1.0
    model = result.model
    head_ids = {id(p) for p in model.scene_head.parameters()}
    assert head_ids <= {id(p) for p in parameter_groups(model)["vision"]}
    fresh = LameModel.build_tiny("micro", num_reason_tokens=0, embed_dim=32, with_decoder=False, seed=0,
                                 vocabulary=VOCABULARY, scene_head=True)
    assert not torch.equal(fresh.scene_head.shape.weight, model.scene_head.shape.weight)
    loaded = LameModel.from_pretrained(tmp_path / "run" / "model")
    torch.testing.assert_close(loaded.scene_head.shape.weight, model.scene_head.shape.weight)


def test_a_stage0_backbone_of_another_size_is_refused_in_one_sentence(tmp_path):
    from lame_tools.errors import LameError
    from lame_tools.train import get_train_preset
    from lame_tools.train.build import build_model

    other = LameModel.build_tiny("micro", num_reason_tokens=0, embed_dim=32, with_decoder=False, seed=0,
                                 vocabulary=VOCABULARY)
    other.save_pretrained(tmp_path / "micro")
    config = get_train_preset("discriminative")
    config.init_from = str(tmp_path / "micro")
    with pytest.raises(LameError, match="not the size this run builds"):
        build_model(config)


def test_shape_only_images_are_deterministic_colourless_and_trained_on(tmp_path):
    import dataclasses

    import numpy as np

    from lame_tools.train import get_train_preset, train
    from lame_tools.train.data import shape_only_images

    config = dataclasses.replace(get_train_preset("micro-scene"), shape_only_images=6, stage1_steps=0)
    scenes, images = shape_only_images(config, 3)
    again_scenes, again = shape_only_images(config, 3)
    assert len(scenes) == 6 and scenes == again_scenes
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(images, again))
    assert shape_only_images(config, 4)[0] != scenes
    # two processes split the step's scenes between them
    halves = shape_only_images(config, 3, 0, 2)[0] + shape_only_images(config, 3, 1, 2)[0]
    assert sorted(map(id, halves)) != [] and len(halves) == 6
    result = train(config, tmp_path / "run", show_progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(row["scene_shape_only"] > 0 for row in rows)
    assert result.summary["complete"]


def test_a_head_with_context_reads_its_neighbours_and_starts_as_the_per_token_head():
    grids = torch.tensor([[1, 8, 8], [1, 4, 8]])  # merged 2x2: 4x4 cells, then 2x4
    tokens = torch.randn(24, 6)
    plain, wide = SceneHead(6), SceneHead(6, context=3)
    wide.load_state_dict(plain.state_dict(), strict=False)
    for a, b in zip(plain(tokens), wide(tokens, grids, 2)):
        torch.testing.assert_close(a, b)  # the convolution starts at zero
    with torch.no_grad():
        wide.context.weight.normal_()
    before = wide(tokens, grids, 2)[0]
    moved = tokens.clone()
    moved[5] += 1.0  # cell (1, 1) of the first image
    after = wide(moved, grids, 2)[0]
    changed = {i for i in range(24) if not torch.allclose(before[i], after[i])}
    assert changed == {0, 1, 2, 4, 5, 6, 8, 9, 10}  # itself and its 8 neighbours, not the second image
    with pytest.raises(ValueError, match="grids"):
        wide(tokens)
    with pytest.raises(ValueError, match="odd"):
        SceneHead(6, context=2)


def test_a_run_with_context_starts_from_a_per_token_head(tmp_path):
    from lame_tools.errors import LameError
    from lame_tools.train import build_config
    from lame_tools.train.build import build_model

    base = build_config("micro-scene")
    folder = build_model(base).save_pretrained(tmp_path / "plain")
    for parts in ("all", "model"):
        config = build_config("micro-scene", [f"init_from={folder}", f"init_parts={parts}", "scene_head_context=3"])
        model = build_model(config)
        assert model.config.scene_head_context == 3 and not model.scene_head.context.weight.any()
        loaded = LameModel.from_pretrained(folder)
        torch.testing.assert_close(model.scene_head.shape.weight, loaded.scene_head.shape.weight)
        saved = LameModel.from_pretrained(model.save_pretrained(tmp_path / f"wide-{parts}"))
        assert saved.scene_head.context is not None
    wide = build_model(build_config("micro-scene", ["scene_head_context=3"])).save_pretrained(tmp_path / "wide")
    with pytest.raises(LameError, match="scene_head_context"):
        build_model(build_config("micro-scene", [f"init_from={wide}", "init_parts=all"]))
