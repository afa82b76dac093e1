"""Help texts state defaults and units; the examples they give work."""

from __future__ import annotations

import re

import pytest

from seqhand.cli import build_parser


def help_of(*path: str) -> str:
    parser = build_parser()
    sub = parser
    for name in path:
        action = next(a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction")
        sub = action.choices[name]
    return " ".join(sub.format_help().split())


@pytest.mark.parametrize(
    "cmd, option, must",
    [
        (("poses", "build"), "--n", ["default 1,000,000", "MB"]),
        (("poses", "build"), "--seed", ["default 0"]),
        (("poses", "build"), "--source", ["default: prior"]),
        (("poses", "flows"), "--count", ["default 100"]),
        (("poses", "flows"), "--start", ["default 0"]),
        (("poses", "flows"), "--seed", ["default 0"]),
        (("poses", "flows"), "--alpha", ["default 3.0"]),
        (("generate",), "--frames", ["preset"]),
        (("generate",), "--image-size", ["preset", "pixels"]),
        (("generate",), "--bank-size", ["preset"]),
        (("generate",), "--shard-size", ["preset"]),
        (("train",), "--config", ["default tiny"]),
        (("infer",), "--box", ["pixels"]),
        (("infer",), "--fov", ["default 60"]),
        (("infer",), "--max-hands", ["default 2"]),
        (("infer",), "--min-confidence", ["default 0.2"]),
    ],
)
def test_help_states_defaults_and_units(cmd, option, must):
    text = help_of(*cmd)
    text = text[text.index("options:") :]  # the option's own entry, not the usage or an example
    start = text.index(option + " ")
    after = text[start : start + 400]
    for m in must:
        assert m in after, (cmd, option, m, after)


def test_generate_help_states_the_presets_sizes():
    """The preset sizes in `seqhand generate --help` are those of ``PRESETS`` (they drifted once:
    the help said the demo had 480 sequences at 128 px when it had 2,000 at 96)."""
    from seqhand.data.generate import PRESETS, GenerateConfig

    text = help_of("generate")
    sizes = text[text.index("sizes: ") + 7 :].split("(default")[0].split("; ")
    for name, over in PRESETS.items():
        c = {f.name: f.default for f in GenerateConfig.__dataclass_fields__.values()} | over
        seg = next(x for x in sizes if x.startswith(name + " "))
        for want in (f"{c['num_train']:,} + {c['num_test']:,}", f"{c['frames']} frames",
                     f"{c['image_size']} px", f"shards of {c['shard_size']}",
                     f"{c['bank_size']:,}"):  # fmt: skip
            assert want in seg, (name, want, seg)
    size = text[text.index("--image-size IMAGE_SIZE frame") :][:120]
    assert f"{PRESETS['paper']['image_size']} or {PRESETS['demo']['image_size']} for demo" in size


def test_poses_build_help_example_uses_real_modes():
    from seqhand.cli.poses import _parse_weights
    from seqhand.hand.prior import MODE_NAMES

    text = help_of("poses", "build")
    examples = re.findall(r"--mode-weights ([a-z_]+=[\w=.,]+)", text) + re.findall(
        r"e\.g\. ([\w=.,]+=\d)", text
    )
    assert examples
    for ex in examples:
        assert set(_parse_weights(ex)) <= set(MODE_NAMES), ex
