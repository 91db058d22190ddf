"""RunningServer from the hub's server models (the hub's answers: tests/e2e/test_spawn.py)."""

import pytest

from repo2docker_service.hubservers import RunningServer


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            {
                "url": "/user/a/x/",
                "ready": True,
                "pending": None,
                "user_options": {"image": "r/x:1"},
            },
            ("/user/a/x/", True, None, "r/x:1"),
        ),
        (
            {"url": "/user/a/x/", "ready": False, "pending": "spawn"},
            ("/user/a/x/", False, "spawn", ""),
        ),
        ({"user_options": {"image": 3}}, ("", False, None, "")),  # not a string: no image
        ({"user_options": "odd"}, ("", False, None, "")),
        ({}, ("", False, None, "")),
    ],
)
def test_from_model(model, expected):
    server = RunningServer.from_model("x", model)
    assert (server.url, server.ready, server.pending, server.image) == expected
    assert server.to_dict()["name"] == "x"
