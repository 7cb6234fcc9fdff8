"""The ``jenkins`` target against the Jenkins twin over verified HTTPS: minting as the user
itself, the overlap, revocation proven by a 401, strays, and every refusal named."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rotation.errors import AccessDenied, SecretNotRotatable, TransientError, VerificationFailed
from rotation.secret_value import Credential, SecretValue
from rotation.targets.jenkins import JenkinsTokenTarget
from tests.support.targets import context_of, token_target
from twins.jenkins import JenkinsTwin

EXPIRES = datetime.now(UTC) + timedelta(days=45)


@pytest.fixture
def jenkins(tmp_path: Path) -> Iterator[JenkinsTwin]:
    with JenkinsTwin(cert_dir=tmp_path / "jenkins", context_path="/jenkins/") as twin:
        twin.add_user("svc-ci")
        twin.add_user("alice")
        yield twin


def target(jenkins: JenkinsTwin, *, exclusive: bool = False) -> JenkinsTokenTarget:
    spec = token_target("jenkins", jenkins.url, jenkins.ca_path, exclusive=exclusive)
    return JenkinsTokenTarget(context_of(spec, "overlap"))


def token_of(jenkins: JenkinsTwin, user: str = "svc-ci", name: str = "first") -> Credential:
    value = jenkins.add_token(user, name)
    uuid = next(t.uuid for t in jenkins.tokens(user) if t.name == name)
    return Credential(user, SecretValue(value), secret_field="token", ref_field="tokenUuid", ref=uuid)


def test_a_minted_token_overlaps_the_current_one_until_retired(jenkins: JenkinsTwin) -> None:
    tokens = target(jenkins)
    current = token_of(jenkins)
    assert tokens.accepts(current)
    new = tokens.mint(current, "akv-rotator r-1", EXPIRES)
    assert (new.username, new.secret_field, new.ref_field) == ("svc-ci", "token", "tokenUuid")
    assert new.password.reveal().startswith("11") and len(new.password) == 34
    assert sorted(t.name for t in jenkins.tokens("svc-ci")) == ["akv-rotator r-1", "first"]
    tokens.apply(current, new)
    tokens.verify(new)
    assert tokens.accepts(current), "both work during the overlap"
    tokens.retire(current, new)
    assert not tokens.accepts(current)
    assert tokens.accepts(new)
    assert [t.uuid for t in jenkins.tokens("svc-ci")] == [new.ref]
    tokens.retire(current, new)  # a repeat is harmless: revoking a gone uuid answers 200


def test_a_token_of_another_user_does_not_log_in_as_the_named_one(jenkins: JenkinsTwin) -> None:
    """Jenkins looks a Basic token up in the named user's store only, so another user's
    token is simply refused (the engine then stops with AccessDenied, changing nothing)."""
    tokens = target(jenkins)
    alices = token_of(jenkins, "alice")
    claimed = Credential("svc-ci", alices.password, secret_field="token", ref_field="tokenUuid",
                         ref=alices.ref)
    assert not tokens.accepts(claimed)
    with pytest.raises(AccessDenied):
        tokens.mint(claimed, "akv-rotator r-0", EXPIRES)
    assert len(jenkins.tokens("svc-ci")) == 0 and len(jenkins.tokens("alice")) == 1


def test_a_revoked_or_wrong_token_does_not_log_in(jenkins: JenkinsTwin) -> None:
    tokens = target(jenkins)
    current = token_of(jenkins)
    wrong = Credential("svc-ci", SecretValue("11" + "0" * 32), secret_field="token")
    assert not tokens.accepts(wrong)
    with pytest.raises(VerificationFailed):
        tokens.verify(wrong)
    with pytest.raises(AccessDenied, match="refused the token of 'svc-ci' for generateNewToken"):
        tokens.mint(wrong, "akv-rotator r-2", EXPIRES)
    assert [t.uuid for t in jenkins.tokens("svc-ci")] == [current.ref]


def test_an_unknown_user_is_named(jenkins: JenkinsTwin) -> None:
    ghost = Credential("ghost", SecretValue("11" + "1" * 32), secret_field="token")
    assert not target(jenkins).accepts(ghost)  # Jenkins answers 401 for an unknown user


def test_a_wrong_token_uuid_fails_retirement_visibly(jenkins: JenkinsTwin) -> None:
    tokens = target(jenkins)
    current = token_of(jenkins)
    mislabelled = Credential("svc-ci", current.password, secret_field="token",
                             ref_field="tokenUuid", ref="not-this-token")
    new = tokens.mint(current, "akv-rotator r-3", EXPIRES)
    with pytest.raises(VerificationFailed, match="still accepts the previous token"):
        tokens.retire(mislabelled, new)
    assert tokens.accepts(new)


def test_strays_are_reported_unless_the_tokens_are_the_rotators_alone(jenkins: JenkinsTwin) -> None:
    current = token_of(jenkins)
    assert target(jenkins).sweep_strays(current, "akv-rotator r-4") == [
        "Jenkins token 'akv-rotator r-4' of user 'svc-ci' (revoke it in the user's Security page)"]
    exclusive = target(jenkins, exclusive=True)
    assert exclusive.sweep_strays(current, "akv-rotator r-4") == []
    stray = exclusive.mint(current, "akv-rotator r-4", EXPIRES)  # minted, never stored
    new = exclusive.mint(current, "akv-rotator r-4", EXPIRES)
    exclusive.retire(current, new)  # revokeAllExcept the new token
    assert [t.uuid for t in jenkins.tokens("svc-ci")] == [new.ref]
    assert not exclusive.accepts(stray)


def test_server_errors_are_transient_and_the_lost_answer_leaves_one_named_token(
    jenkins: JenkinsTwin,
) -> None:
    tokens = target(jenkins)
    current = token_of(jenkins)
    jenkins.inject(status=503, endpoint="generateNewToken", count=1)
    with pytest.raises(TransientError, match="HTTP 503"):
        tokens.mint(current, "akv-rotator r-5", EXPIRES)
    jenkins.inject(status=0, endpoint="generateNewToken", count=1, after_processing=True)
    with pytest.raises(TransientError):
        tokens.mint(current, "akv-rotator r-5", EXPIRES)
    assert sorted(t.name for t in jenkins.tokens("svc-ci")) == ["akv-rotator r-5", "first"]


def test_tls_is_verified_against_the_operators_ca(jenkins: JenkinsTwin, tmp_path: Path) -> None:
    with JenkinsTwin(cert_dir=tmp_path / "other") as other:  # another CA
        spec = token_target("jenkins", jenkins.url, other.ca_path)
        tokens = JenkinsTokenTarget(context_of(spec, "overlap"))
        with pytest.raises(SecretNotRotatable, match="TLS verification failed"):
            tokens.accepts(token_of(jenkins))


def test_an_address_without_the_context_path_is_refused_with_the_reason(
    jenkins: JenkinsTwin,
) -> None:
    root = jenkins.url.removesuffix("jenkins/")
    spec = token_target("jenkins", root, jenkins.ca_path)
    tokens = JenkinsTokenTarget(context_of(spec, "overlap"))
    with pytest.raises(SecretNotRotatable, match=r"HTTP 404: is the target's address Jenkins' root"):
        tokens.accepts(token_of(jenkins))
