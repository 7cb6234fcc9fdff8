"""Jenkins twin: an HTTPS server speaking Jenkins' API-token protocol, for tests and the demo.

Usage::

    from twins.jenkins import JenkinsTwin

    with JenkinsTwin(context_path="/jenkins/") as twin:
        twin.add_user("svc-rotator")
        token = twin.add_token("svc-rotator", "bootstrap")
        with twin.session("svc-rotator", token) as http:  # requests, trusting twin.ca_path
            url = twin.descriptor_url("svc-rotator") + "generateNewToken"
            new = http.post(url, data={"newTokenName": "next"}).json()["data"]
        assert [t.name for t in twin.tokens("svc-rotator")] == ["bootstrap", "next"]

What it reproduces, from jenkinsci/jenkins @ff9430ee (2.579-SNAPSHOT; the team's Jenkins
API-token reference notes give line numbers for each fact):

- ``core/src/main/java/jenkins/security/ApiTokenProperty.java``: the ``DescriptorImpl`` web
  methods ``generateNewToken`` (with the 2.548 expiration parameters), ``revoke``,
  ``revokeAll``, ``revokeAllExcept``, ``rename``; who may call each; their JSON, empty and
  error answers; ``@RequirePOST`` (405 ``Allow: POST``, from Stapler's ``RequirePOST``);
- ``core/src/main/java/jenkins/security/apitoken/ApiTokenStore.java``: token format (``11`` +
  32 hex), SHA-256 storage, matching of new-style and legacy values, expiry by calendar date;
- ``core/src/main/java/jenkins/security/BasicHeaderProcessor.java``,
  ``BasicHeaderApiTokenAuthenticator.java``, ``BasicApiTokenHelper.java``,
  ``BasicHeaderRealPasswordAuthenticator.java``: HTTP Basic with a token or a password; bad
  credentials -> 401 ``WWW-Authenticate: Basic realm="Jenkins"``
  (``hudson/security/SecurityRealm.java``), even on ``whoAmI``;
- ``core/src/main/java/hudson/security/WhoAmI.java`` and ``hudson/model/User.java``
  (``/whoAmI/api/json``, ``/me/api/json``); ``HudsonAuthenticationEntryPoint.java`` (anonymous
  -> 403), ``AccessDeniedHandlerImpl.java`` + ``AccessDeniedException3.java`` (403 headers);
- ``core/src/main/java/hudson/security/csrf/CrumbFilter.java``, ``DefaultCrumbIssuer.java`` and
  ``jenkins/security/ApiCrumbExclusion.java``: POSTs need a session-bound crumb unless an API
  token authenticated them;
- ``core/src/main/java/hudson/util/HttpResponses.java``: ``okJSON``/``errorJSON`` (HTTP 200).

Not reproduced: any other Jenkins page; a JSON token list (Jenkins has none: the list is
``@Restricted`` "only for Jelly"), so tests read ``twin.tokens(user)`` or ``/_twin/...``;
``changeToken``/``addFixedToken`` over HTTP; usage statistics; the SYSTEM user.

Modules: ``store`` (users, token stores), ``clock`` (movable time), ``security`` (Basic
auth, crumbs), ``api_tokens`` (the web methods), ``routes`` (filter chain and routing of the
Jenkins surface), ``answers``/``wire``/``pages`` (status + headers, JSON, HTML), ``faults``
(fault injection, request log), ``control`` (the ``/_twin`` surface), ``exchange`` (request
and response values), ``server`` (HTTPS), ``twin`` (the facade), ``__main__`` (CLI). TLS
certificates come from :mod:`twins.tls`; the plumbing shared with the Key Vault twin (threaded
TLS server, fault arming and timing, request log, start/stop, the CLI's serve loop) from
:mod:`twins.http`. Nothing here imports ``rotation``, ``handlers`` or the Azure SDK.
"""

from twins.jenkins.clock import TwinClock
from twins.jenkins.faults import Fault, RecordedRequest
from twins.jenkins.store import JenkinsUser, TokenInfo
from twins.jenkins.twin import JenkinsTwin

__all__ = ["Fault", "JenkinsTwin", "JenkinsUser", "RecordedRequest", "TokenInfo", "TwinClock"]
