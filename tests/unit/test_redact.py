"""Secrets in error messages: no refusal or log line repeats credentials, encoded or not.

The kind (issue 15, item 10): a URL with credentials, literal or percent-encoded into the host
part, refused with a message that quoted it. Every variant goes through the refusals that
see it (repository URL, ref, ref not found) and through the redaction itself.
"""

from __future__ import annotations

import io
import logging

import pytest

from repo2docker_service.errors import InvalidInput, ServiceError, SourceError
from repo2docker_service.redact import install_log_redaction, redact_secrets
from repo2docker_service.sources import (
    SUPPORTED_SCHEMES,
    ref_not_found,
    validate_ref,
    validate_repo_url,
)

S = "s3cr3t-Pw9"

#: repository URLs people paste with credentials in them (every one must be refused)
SECRET_URLS = [
    f"https://user:{S}@host.example/x",
    f"https://{S}@host.example/x",
    f"https://x-access-token:{S}@github.com/org/repo.git",
    f"http://user%3A{S}%40host.example/x",
    f"http://user%3a{S}%40host.example/x",
    f"http://user%253A{S}%2540host.example/x",
    f"http://user%25253A{S}%252540host.example/x",
    f"https://user%3A{S}@host.example/x",
    f"https://user:{S}%40host.example/x",
    f"https://{S}%40host.example:8443/x",
    f"HTTPS://USER:{S}@HOST.EXAMPLE/x",
    f"https://user:{S}/x",
    f"https://user:{S}@[::1]:8080/x",
    f"https://user:{S}@host.example:notaport/x",
    f"ssh://git:{S}@host.example/x",
    f"git+ssh://user%3A{S}%40host.example/x",
    f"file://user:{S}@localhost/srv/x",
    f"ftp://user:{S}@host.example/x",
    f"https://user:{S}@host.example/x\n",
    f"https://user:{S}@host.example/x y",
    f"https://user:{S}@-host.example/x",
    f"https://user:{S}@ho$t.example/x",
]

#: refs people paste (the refusal or the "not found" must not repeat the secret)
SECRET_REFS = [
    f"https://tok{S}@host.example/x",
    f"user:{S}@host.example",
    f"{S}@github.com/org/repo",
    f"{S}@host.example:8443/x",
    f"http://user%3A{S}%40host.example/x",
]


@pytest.mark.parametrize("url", SECRET_URLS)
def test_a_refused_repository_url_never_repeats_the_secret(url):
    with pytest.raises(InvalidInput) as e:
        validate_repo_url(url, allowed_schemes=SUPPORTED_SCHEMES - {"ftp"})
    assert S not in e.value.message
    assert S not in str(e.value) and S not in repr(e.value)


def test_percent_encoded_credentials_are_refused_as_credentials():
    for url in SECRET_URLS[3:7]:
        with pytest.raises(InvalidInput, match="must not contain a user name or password"):
            validate_repo_url(url, allowed_schemes=["http"])


@pytest.mark.parametrize("ref", SECRET_REFS)
def test_a_refused_or_missing_ref_never_repeats_the_secret(ref):
    try:
        validate_ref(ref)
    except InvalidInput as e:
        assert S not in e.message
    else:  # a valid ref name: its "not found" answer
        assert S not in ref_not_found("https://host.example/x", ref).message


@pytest.mark.parametrize(
    "text, kept",
    [
        (f"https://user:{S}@host.example/x", "https://***@host.example/x"),
        (f"http://user%3A{S}%40host.example/x", "http://***@host.example/x"),
        (f"http://user%253A{S}%2540host.example/x", "http://***@host.example/x"),
        (f"repo URL host 'user%3A{S}%40host' is bad", "repo URL host '***@host' is bad"),
        (
            f"GET launch?repo=https%3A%2F%2Fuser%253A{S}%2540h%2Fx&ref=main",
            "GET launch?repo=https://***@h/x&ref=main",
        ),
        (f"https://user:{S}/x", "https://user:***/x"),
        (f"(https://user:{S})", "(https://user:***"),
        (f"(https://user:{S}@h:5000)", "(https://***@h:5000)"),
        (f"https://h/x?private_token={S}&a=1", "https://h/x?private_token=***&a=1"),
        (f"https://h/x?access_token={S}", "https://h/x?access_token=***"),
        (f"invalid ref 'user:{S}@host': no", "invalid ref '***@host': no"),
        (f"ref '{S}@github.com/org/repo' not found", "ref '***@github.com/org/repo' not found"),
        (f"could not read 'https://{S}@h/x/': 403", "could not read 'https://***@h/x/': 403"),
    ],
)
def test_redaction_keeps_what_helps_and_drops_the_secret(text, kept):
    assert redact_secrets(text) == kept


@pytest.mark.parametrize(
    "text",
    [
        "https://github.com/org/repo",
        "http://127.0.0.1:8080/org/repo.git",
        # the service's own start-up message (main made it 'http://127.0.0.1:***')
        "Registry 127.0.0.1:5000 (http://127.0.0.1:5000) cannot be used: x",
        "at http://127.0.0.1:5000, http://h:80. or http://h:1;",
        "https://[::1]:8080/x",
        "environments for 'alice@example.org'",
        "ref 'a@{1}' is not valid",
        "a file%20name and 100% done",
        "a=b c==d",
        "",
    ],
)
def test_redaction_leaves_harmless_text_alone(text):
    assert redact_secrets(text) == text


@pytest.mark.parametrize("url", SECRET_URLS + SECRET_REFS)
def test_every_service_error_is_redacted_when_made(url):
    for kind in (ServiceError, InvalidInput, SourceError):
        assert S not in kind(f"could not use {url!r}: {url}").message


def test_log_records_are_redacted_on_the_logger_and_its_handlers():
    stream = io.StringIO()
    parent = logging.getLogger("test-redact")
    parent.propagate = False
    handler = logging.StreamHandler(stream)
    parent.addHandler(handler)
    child = logging.getLogger("test-redact.child")
    try:
        install_log_redaction([parent])
        install_log_redaction([parent])  # twice adds nothing
        assert len(handler.filters) == len(parent.filters) == 1
        parent.warning("refused %s", f"http://user%3A{S}%40h/x")
        child.warning("child %s", f"https://tok:{S}@h/x")
        try:
            raise ValueError(f"bad https://u:{S}@h/x")
        except ValueError:
            parent.exception("failed")
    finally:
        parent.removeHandler(handler)
    text = stream.getvalue()
    assert "refused http://***@h/x" in text and "child https://***@h/x" in text
    assert "ValueError: bad https://***@h/x" in text
    assert S not in text
