"""The webhooks section and a key's webhook fields, checked at load."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from router.config.load import parse_config
from router.config.model import ConfigError
from router.config.webhooks import secret_key

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef").decode()


def config(key: dict[str, Any], **sections: Any) -> Any:
    return parse_config(
        {
            "keys": [{"name": "k", "key": "sk-1", **key}],
            "providers": [
                {"name": "p", "kind": "simulator", "models": {"sora-2": {"price_per_second": 1}}}
            ],
            **sections,
        },
        env={},
    )


def test_a_key_with_a_webhook_and_the_schedule() -> None:
    loaded = config(
        {
            "webhook_url": "https://h.example.com/x",
            "webhook_secret": SECRET,
            "webhook_events": ["video.failed"],
        },
        webhooks={"first_delay": 1, "factor": 3, "jitter": 0, "allow_private_addresses": True},
    )
    key = loaded.keys[0]
    assert (key.webhook_url, key.webhook_events) == ("https://h.example.com/x", ("video.failed",))
    assert secret_key(key.webhook_secret) == b"0123456789abcdef"
    hooks = loaded.webhooks
    assert (hooks.first_delay, hooks.factor, hooks.jitter, hooks.allow_private_addresses) == (
        1,
        3,
        0.0,
        True,
    )
    assert "whsec" not in repr(key)


@pytest.mark.parametrize(
    ("key", "sections", "problem"),
    [
        ({"webhook_url": "https://h.example.com"}, {}, "keys[0].webhook_secret: is required"),
        ({"webhook_secret": "nope"}, {}, "keys[0].webhook_secret: must start with whsec_"),
        ({"webhook_secret": "whsec_!!"}, {}, "keys[0].webhook_secret: must be whsec_"),
        ({"webhook_secret": "whsec_YWJj"}, {}, "keys[0].webhook_secret: must hold at least"),
        ({"webhook_events": ["video.done"]}, {}, "keys[0].webhook_events: must be a list"),
        ({}, {"webhooks": {"factor": 0.5}}, "webhooks.factor: must be >= 1"),
        ({}, {"webhooks": {"nope": 1}}, "webhooks.nope"),
    ],
)
def test_bad_webhook_settings_are_reported(
    key: dict[str, Any], sections: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError) as failed:
        config(key, **sections)
    assert any(p.startswith(problem) for p in failed.value.problems), failed.value.problems
