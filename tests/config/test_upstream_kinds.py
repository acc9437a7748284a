"""The provider rules of the task kinds (issue 20): what a kind cannot render exactly is
refused or narrowed away when the config is read, kind-only fields stay with their kinds, and
the multi-vendor example passes ``sora-proxy check``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from router.cli import main
from router.config.load import load_config, parse_config
from router.config.model import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.yaml"
EXAMPLE_ENV = {
    "SORA_PROXY_STUDIO_KEY": "sk-studio",
    "GEMINI_API_KEY": "g",
    "OPENROUTER_API_KEY": "o",
    "ARK_API_KEY": "a",
    "XAI_API_KEY": "x",
    "FAL_KEY": "f",
}
FAL_FIELDS = {"seconds": "duration", "aspect_ratio": "aspect_ratio", "resolution": "resolution"}


def provider(kind: str, models: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": f"p-{kind}",
        "kind": kind,
        "base_url": "https://upstream.example/v1",
        "models": models,
        **extra,
    }


def problems(*providers: dict[str, Any]) -> list[str]:
    raw = {"keys": [{"name": "a", "key": "k"}], "providers": list(providers)}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, env={})
    return caught.value.problems


def test_the_example_passes_check_with_its_keys_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(name, value)
    assert main(["check", "--config", str(EXAMPLE)]) == 0
    assert "ok (5 providers" in capsys.readouterr().out


def test_the_example_serves_sora_2_by_veo_through_gemini_and_openrouter() -> None:
    config = load_config(EXAMPLE, env=EXAMPLE_ENV)
    by_kind = {p.kind: p for p in config.providers}
    assert set(by_kind) == {"gemini", "openrouter", "ark", "xai", "fal"}
    gemini, router = by_kind["gemini"].models["sora-2"], by_kind["openrouter"].models["sora-2"]
    assert "veo" in gemini.upstream_model and "veo" in router.upstream_model
    assert (gemini.price_per_second, router.price_per_second) == (0.15, 0.16)
    assert gemini.seconds == (4, 8)  # narrowed to what Veo renders
    fal = by_kind["fal"].models["sora-2"]
    assert fal.fields is not None and fal.fields.seconds_format == "{}s"


def test_unlisted_sizes_and_seconds_narrow_to_what_the_kind_names() -> None:
    raw = {
        "keys": [{"name": "a", "key": "k"}],
        "providers": [provider("gemini", {"sora-2-pro": {"price_per_second": 0.4}})],
    }
    served = parse_config(raw, env={}).providers[0].models["sora-2-pro"]
    assert served.sizes == ("720x1280", "1280x720")  # 1024x1792 has no Veo name
    assert served.seconds == (4, 8)


def test_a_listed_size_or_length_the_kind_cannot_name_is_a_problem() -> None:
    model = {"price_per_second": 0.4, "sizes": ["1024x1792"], "seconds": [10]}
    found = problems(provider("gemini", {"sora-2-pro": model}))
    where = "providers[0].models.sora-2-pro"
    assert f"{where}.sizes: kind gemini cannot render 1024x1792 exactly" in found
    assert f"{where}.seconds: kind gemini cannot render 10 seconds" in found
    assert f"{where}.sizes: kind gemini can render no size of this model exactly" in found


def test_kind_only_fields_stay_with_their_kinds() -> None:
    found = problems(
        provider("gemini", {"sora-2": {"price_per_second": 0.1, "fields": FAL_FIELDS}}),
        provider("openai", {"sora-2": {"price_per_second": 0.1}}, render_estimate=60),
        provider("xai", {"sora-2": {"price_per_second": 0.1}}, format="gemini"),
        provider("fal", {"sora-2": {"price_per_second": 0.1}}),
        {**provider("simulator", {"sora-2": {"price_per_second": 0.1}}), "format": "pigeon"},
    )
    assert "providers[0].models.sora-2.fields: only for kind fal" in found
    assert "providers[1].render_estimate: only for kinds openrouter, gemini, xai, ark, fal" in found
    assert "providers[2].format: only for kind simulator" in found
    assert "providers[3].models.sora-2.fields: is required for kind fal" in found
    assert any(p.startswith("providers[4].format: must be one of openai") for p in found)


def test_a_fal_model_that_is_not_told_the_size_or_length_must_list_them() -> None:
    fields = {"aspect_ratio": "aspect_ratio"}
    found = problems(provider("fal", {"sora-2": {"price_per_second": 0.1, "fields": fields}}))
    assert "providers[0].models.sora-2.sizes: is required: the field mapping does not tell " in (
        " ".join(found)
    )
    assert any("seconds: is required" in p for p in found)
    listed = {"price_per_second": 0.1, "fields": fields, "sizes": ["1280x720"], "seconds": [8]}
    raw = {"keys": [{"name": "a", "key": "k"}], "providers": [provider("fal", {"sora-2": listed})]}
    assert parse_config(raw, env={}).providers[0].models["sora-2"].sizes == ("1280x720",)


def test_a_simulator_takes_any_format_and_the_rules_of_that_format() -> None:
    raw = {
        "keys": [{"name": "a", "key": "k"}],
        "providers": [
            {
                "name": "sim",
                "kind": "simulator",
                "format": "xai",
                "models": {"sora-2": {"price_per_second": 0.1}},
                "render_estimate": 5,
            }
        ],
    }
    sim = parse_config(raw, env={}).providers[0]
    assert (sim.format, sim.render_estimate) == ("xai", 5)
    assert sim.models["sora-2"].seconds == (4, 8, 10, 12, 15)
