"""The tiny stand-in sees ink, not paper: white maps to zero input, and the vision-first warm-up teaches
its vision tower to tell diagram kinds apart before any text."""

from __future__ import annotations

import torch
from PIL import Image, ImageDraw

from dicrepro.params import Params
from dicrepro.train.tiny_model import init_tiny_model, tiny_processor
from dicrepro.train.tiny_tokenizer import train_tokenizer
from dicrepro.train.vision_warmup import pooled_image_tokens, vision_warmup


def _params(tmp_path) -> Params:
    p = Params(run_dir=tmp_path / "run", seed=3)
    p.model.tiny = p.model.tiny.model_copy(update=dict(
        vocab_size=400, hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, vision_depth=1, vision_hidden_size=32, vision_heads=2))
    p.model.max_pixels = 12544
    return p


def _drawing(kind: str, k: int) -> Image.Image:
    """Black ink on white: a 'pie' (a circle) or a 'flow' (boxes in a row), placed differently each time."""
    img = Image.new("RGB", (112, 112), "white")
    d = ImageDraw.Draw(img)
    o = 4 * (k % 5)
    if kind == "pie":
        d.ellipse([10 + o, 10, 90 + o, 90], outline="black", width=3)
    else:
        for i in range(3):
            d.rectangle([5 + 35 * i, 40 + o, 30 + 35 * i, 60 + o], outline="black", width=3)
    return img


def test_white_paper_is_zero_input(tmp_path):
    p = _params(tmp_path)
    proc = tiny_processor(p, train_tokenizer(["a b c"] * 3, 300))
    white = proc.image_processor(images=[Image.new("RGB", (112, 112), "white")], return_tensors="pt")
    assert white["pixel_values"].abs().max().item() == 0.0
    ink = proc.image_processor(images=[_drawing("pie", 0)], return_tensors="pt")
    assert ink["pixel_values"].min().item() < -1.5  # black is far from paper


def test_warmup_teaches_the_vision_tower_two_kinds_apart(tmp_path):
    p = _params(tmp_path)
    tok = train_tokenizer(["a b c"] * 3, 300)
    proc = tiny_processor(p, tok)
    model = init_tiny_model(p, tok)
    images = [_drawing(kind, k) for k in range(6) for kind in ("pie", "flow")]
    labels = [kind for _ in range(6) for kind in ("pie", "flow")]
    before = [x.detach().clone() for x in model.model.visual.parameters()]
    curve = vision_warmup(model, proc, images, labels, epochs=12, lr=3e-3, seed=1, batch_size=4)
    assert len(curve) == 12 and curve[-1]["loss"] < curve[0]["loss"]
    assert curve[-1]["accuracy"] == 1.0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.model.visual.parameters()))
    # the image tokens the language model receives now differ between the two kinds
    model.eval()
    with torch.no_grad():
        data = [(x["pixel_values"], x["image_grid_thw"]) for x in
                (proc.image_processor(images=[im], return_tensors="pt") for im in images[:2])]
        pie, flow = pooled_image_tokens(model, data)
    assert torch.nn.functional.cosine_similarity(pie, flow, dim=0).item() < 0.99


def test_warmup_leaves_a_patch_embedding_blind_to_the_page_brightness(tmp_path):
    # A dark theme's background is a large constant in every patch; the warm-up keeps each filter summing
    # to zero, so any uniform grey (white paper, a dark background, black) embeds to nothing, while a
    # diagram's lines and its colours are what the tower sees.
    p = _params(tmp_path)
    tok = train_tokenizer(["a b c"] * 3, 300)
    proc = tiny_processor(p, tok)
    model = init_tiny_model(p, tok)
    keys = set(model.state_dict())
    images = [_drawing(kind, k) for k in range(4) for kind in ("pie", "flow")]
    vision_warmup(model, proc, images, [kind for _ in range(4) for kind in ("pie", "flow")],
                  epochs=2, lr=3e-3, seed=1, batch_size=4)
    assert set(model.state_dict()) == keys  # a plain Qwen2.5-VL checkpoint: nothing of the constraint is saved
    embed = model.model.visual.patch_embed
    with torch.no_grad():
        def embedded(image):
            return embed(proc.image_processor(images=[image], return_tensors="pt")["pixel_values"]).abs().max().item()

        for grey in ("white", (40, 40, 40), "black"):
            assert embedded(Image.new("RGB", (56, 56), grey)) < 1e-4, grey
        assert embedded(Image.new("RGB", (56, 56), (120, 200, 255))) > 1e-3  # a fill's colour is seen
        assert embedded(_drawing("pie", 0)) > 1e-2


def _two_epoch_warm_up(tmp_path, **kw) -> tuple[list[dict], torch.Tensor]:
    """Two warm-up epochs over 8 drawings (``kw``: vision_warmup's options): the curve and the tower's
    weights, flattened."""
    p = _params(tmp_path)
    tok = train_tokenizer(["a b c"] * 3, 300)
    images = [_drawing(kind, k) for k in range(4) for kind in ("pie", "flow")]
    labels = [kind for _ in range(4) for kind in ("pie", "flow")]
    model = init_tiny_model(p, tok)
    curve = vision_warmup(model, tiny_processor(p, tok), images, labels, epochs=2, lr=3e-3, seed=1, batch_size=4,
                          **kw)
    return curve, torch.cat([w.detach().flatten() for w in model.model.visual.parameters()])


def test_the_token_loss_is_a_second_loss_on_each_image_token_and_off_by_default(tmp_path):
    # params/tiny.yaml weights it 1.0: the language model attends to single image tokens, so the kind is
    # taught to every token, not only to their mean (README, the tiny stand-in's recipe, point 2).
    def warmed_up(**kw):
        return _two_epoch_warm_up(tmp_path, **kw)

    plain_curve, plain = warmed_up()
    off_curve, off = warmed_up(token_loss=0.0)
    on_curve, on = warmed_up(token_loss=1.0)
    assert torch.equal(plain, off) and plain_curve == off_curve  # 0 is the warm-up without it, to the bit
    assert not torch.equal(on, off)
    # the first batches' loss is the mean's plus each token's (both about ln 2 at the start)
    assert on_curve[0]["loss"] > 1.5 * off_curve[0]["loss"]


def test_a_flip_of_the_pixel_values_is_the_processed_mirror_image(tmp_path):
    # The warm-up flips its images each epoch without running the image processor again: the patches'
    # order and each patch's pixels are rearranged, which must equal processing the flipped picture.
    from PIL import ImageOps

    from dicrepro.train.vision_warmup import flip_pixels

    proc = tiny_processor(_params(tmp_path), train_tokenizer(["a b c"] * 3, 300))
    img = Image.new("RGB", (150, 90), "white")
    d = ImageDraw.Draw(img)
    d.rectangle([5, 5, 60, 30], fill=(200, 30, 30))
    d.line([70, 80, 140, 10], fill="black", width=3)

    def processed(image):
        x = proc.image_processor(images=[image], return_tensors="pt")
        return x["pixel_values"], x["image_grid_thw"][0]

    pv, grid = processed(img)
    for lr, ud, picture in [(True, False, ImageOps.mirror(img)), (False, True, ImageOps.flip(img)),
                            (True, True, ImageOps.flip(ImageOps.mirror(img)))]:
        flipped = flip_pixels(pv, grid, left_right=lr, upside_down=ud)
        assert torch.allclose(flipped, processed(picture)[0], atol=1e-5), (lr, ud)
        assert not torch.allclose(flipped, pv)
    assert flip_pixels(pv, grid, left_right=False, upside_down=False) is pv


def test_erasing_blanks_whole_token_squares_and_each_epoch_draws_anew(tmp_path):
    from dicrepro.train.vision_warmup import augmented

    p = _params(tmp_path)
    tok = train_tokenizer(["a b c"] * 3, 300)
    proc = tiny_processor(p, tok)
    config = init_tiny_model(p, tok).config.vision_config
    x = proc.image_processor(images=[Image.new("RGB", (112, 112), "black")], return_tensors="pt")
    item = (x["pixel_values"], x["image_grid_thw"])
    gen = torch.Generator().manual_seed(0)
    first, _ = augmented(item, gen, flips=False, erase=0.5, vision_config=config)
    second, _ = augmented(item, gen, flips=False, erase=0.5, vision_config=config)
    blank = first.abs().amax(1) == 0  # a blank patch is white paper: 0 input
    squares = blank.reshape(-1, 4)  # the 2x2 patches of one merged image token go together
    assert squares.all(1).any() and (~squares).all(1).any()
    assert (squares.all(1) | (~squares).all(1)).all()
    assert not torch.equal(first, second)
    again = augmented(item, torch.Generator().manual_seed(0), flips=False, erase=0.5, vision_config=config)[0]
    assert torch.equal(again, first)  # the same draws from the same seed
    assert augmented(item, gen, flips=False, erase=0.0, vision_config=config)[0] is item[0]


def test_augmentation_changes_the_warm_up_and_is_off_by_default(tmp_path):
    # params/tiny.yaml turns both on: without them the tower fitted 99.6% of its rows and read the type of
    # fewer ICT diagrams (README, the tiny stand-in's recipe, point 2).
    def tower(**kw):
        return _two_epoch_warm_up(tmp_path, **kw)[1]

    plain = tower()
    assert torch.equal(plain, tower(flips=False, erase=0.0))
    assert torch.equal(tower(flips=True, erase=0.25), tower(flips=True, erase=0.25))  # deterministic
    assert not torch.equal(plain, tower(flips=True))
    assert not torch.equal(plain, tower(erase=0.25))
    defaults = Params().model.tiny
    assert not defaults.vision_warmup_flips and defaults.vision_warmup_erase == 0.0
    dumped = defaults.model_dump()
    assert "vision_warmup_flips" not in dumped and "vision_warmup_erase" not in dumped  # old bases stay current
