"""Identity (Entra-shaped authority), tokens refused with 401 and the challenge, a second and less
privileged principal, and the /_cmksim admin API."""

from __future__ import annotations

import json
import os
import time

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm
from azure.mgmt.keyvault import models as kvm

from conftest import (ARM_SCOPE, RESOURCE_GROUP, VAULT_SCOPE, b64url, jwt_parts,
                      make_credential, plain, unique, vault_url)

KV_API = "7.4"
ARM_KV_API = "2026-05-15"  # azure-mgmt-keyvault 14.1.0's default
# crates/keyvault/src/errors.rs, ARM_AUDIENCES
ARM_AUDIENCES = ("'https://management.core.windows.net/','https://management.core.windows.net',"
                 "'https://management.azure.com/','https://management.azure.com'")
SIGNATURE_INVALID = "AKV10000: Token validation failed: the token signature is invalid."
TOKEN_EXPIRED = "[TokenExpired] Error validating token: 'S2S12086'."


def issuer(tenant_id: str) -> str:
    # crates/identity/src/token.rs issuer_for
    return f"https://sts.windows.net/{tenant_id}/"


# ---- (a) tokens -------------------------------------------------------------------------------

def test_discovery_document_and_jwks(rest_url, creds, ca_file):
    tenant = creds["tenantId"]
    r = requests.get(f"{rest_url}/{tenant}/v2.0/.well-known/openid-configuration", verify=ca_file)
    assert r.status_code == 200, r.text
    config = r.json()
    # MSAL requires both (msal/authority.py:116-117); the tenant is the token endpoint's first
    # path segment (msal/authority.py canonicalize).
    assert config["authorization_endpoint"].startswith("https://")
    assert config["token_endpoint"].startswith(f"{rest_url}/{tenant}/"), config["token_endpoint"]
    jwks = requests.get(config["jwks_uri"], verify=ca_file)
    assert jwks.status_code == 200, jwks.text
    kids = {k["kid"] for k in jwks.json()["keys"]}
    assert kids, jwks.text


@pytest.mark.parametrize("scope,audiences", [
    (VAULT_SCOPE, {"https://vault.azure.net"}),
    (ARM_SCOPE, {"https://management.azure.com", "https://management.azure.com/",
                 "https://management.core.windows.net", "https://management.core.windows.net/"}),
])
def test_client_secret_credential_gets_tokens(credential, creds, rest_url, ca_file, scope,
                                              audiences):
    before = int(time.time())
    token = credential.get_token(scope)
    header, claims = jwt_parts(token.token)
    assert header["alg"] == "ES256"
    assert claims["aud"] in audiences, claims
    assert claims["tid"] == creds["tenantId"]
    assert claims["oid"] == creds["objectId"]
    assert claims["appid"] == creds["clientId"]
    assert claims["iss"] == issuer(creds["tenantId"])
    # expires_on is the SDK's wall clock + expires_in: it must leave the SDK's 5-minute refresh
    # window, or the token would be fetched again for every call.
    assert token.expires_on > before + 300, (token.expires_on, before)
    # The signing key is published.
    config = requests.get(f"{rest_url}/{creds['tenantId']}/v2.0/.well-known/openid-configuration",
                          verify=ca_file).json()
    kids = {k["kid"] for k in requests.get(config["jwks_uri"], verify=ca_file).json()["keys"]}
    assert header["kid"] in kids


def test_second_token_request_is_served_from_the_cache(credential):
    first = credential.get_token(VAULT_SCOPE)
    second = credential.get_token(VAULT_SCOPE)
    assert first.token == second.token


def test_wrong_secret_is_refused(creds, ca_file, rest_url):
    bad = make_credential(creds["tenantId"], creds["clientId"], "not-the-secret",
                          creds["authorityHost"], ca_file)
    with pytest.raises(ClientAuthenticationError):
        bad.get_token(ARM_SCOPE)
    # The raw answer is OAuth 2.0's error shape (RFC 6749 5.2), as MSAL reads it.
    config = requests.get(f"{rest_url}/{creds['tenantId']}/v2.0/.well-known/openid-configuration",
                          verify=ca_file).json()
    r = requests.post(config["token_endpoint"], verify=ca_file, data={
        "client_id": creds["clientId"], "client_secret": "not-the-secret",
        "grant_type": "client_credentials", "scope": ARM_SCOPE, "client_info": "1"})
    assert r.status_code in (400, 401), r.text
    assert r.json()["error"] == "invalid_client", r.text


# ---- (d) forged, expired and missing tokens: 401 and the challenge --------------------------

def _kv_get(vault_name: str, token: str | None, ca_file: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    # Through HTTPS_PROXY, like the SDK.
    return requests.get(f"{vault_url(vault_name)}/keys?api-version={KV_API}", headers=headers,
                        verify=ca_file)


def _assert_challenge(r: requests.Response, creds: dict, message: str | tuple) -> None:
    assert r.status_code == 401, (r.status_code, r.text)
    challenge = r.headers.get("WWW-Authenticate", "")
    assert challenge.startswith("Bearer "), challenge
    params = {}
    for item in challenge[len("Bearer "):].split(","):
        k, _, v = item.strip().partition("=")
        params[k] = v.strip('"')
    authorization = params.get("authorization") or params.get("authorization_uri")
    assert authorization, challenge
    # azure-keyvault-keys takes the tenant from the first path segment (http_challenge.py).
    assert authorization.split("://", 1)[1].split("/")[1] == creds["tenantId"], challenge
    assert params.get("resource") == "https://vault.azure.net" or \
        params.get("scope") == "https://vault.azure.net/.default", challenge
    error = r.json()["error"]
    assert error["code"] == "Unauthorized", r.text
    if isinstance(message, tuple):
        assert error["message"] in message, r.text
    else:
        assert error["message"] == message, r.text


def test_missing_token_gets_401_and_challenge(vault, creds, ca_file):
    _assert_challenge(_kv_get(vault.name, None, ca_file), creds,
                      "AKV10000: Request is missing a Bearer or PoP token.")


def test_forged_token_gets_401_and_challenge(vault, credential, creds, ca_file):
    real = credential.get_token(VAULT_SCOPE).token
    header_b64, claims_b64, signature_b64 = real.split(".")
    _, claims = jwt_parts(real)
    claims["oid"] = "00000000-0000-0000-0000-000000000000"  # claims changed, signature kept
    forged = ".".join([header_b64, b64url(json.dumps(claims).encode()), signature_b64])
    _assert_challenge(_kv_get(vault.name, forged, ca_file), creds, SIGNATURE_INVALID)


def test_expired_token_gets_401_and_challenge(vault, credential, creds, ca_file):
    real = credential.get_token(VAULT_SCOPE).token
    header, claims = jwt_parts(real)
    now = int(time.time())
    claims.update(iat=now - 7200, nbf=now - 7200, exp=now - 3600)
    expired = ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()),
                        b64url(os.urandom(64))])
    # Built by hand, so it cannot carry a valid signature: the verifier checks the signature
    # first (crates/identity/src/token.rs), so either message is the right refusal.
    _assert_challenge(_kv_get(vault.name, expired, ca_file), creds,
                      (SIGNATURE_INVALID, TOKEN_EXPIRED))


def test_token_of_wrong_audience_is_refused_on_both_planes(vault, credential, creds, rest_url,
                                                           ca_file):
    arm_token = credential.get_token(ARM_SCOPE).token
    arm_aud = jwt_parts(arm_token)[1]["aud"]
    _assert_challenge(_kv_get(vault.name, arm_token, ca_file), creds,
                      f"AKV10022: Invalid audience. Expected https://vault.azure.net, "
                      f"found: {arm_aud}.")
    vault_token = credential.get_token(VAULT_SCOPE).token
    vault_aud = jwt_parts(vault_token)[1]["aud"]
    r = requests.get(f"{rest_url}/subscriptions/{creds['subscriptionId']}/resourceGroups/"
                     f"{RESOURCE_GROUP}/providers/Microsoft.KeyVault/vaults/{vault.name}"
                     f"?api-version={ARM_KV_API}",
                     headers={"Authorization": f"Bearer {vault_token}"}, verify=ca_file)
    assert r.status_code == 401, r.text
    error = r.json()["error"]
    assert error["code"] == "InvalidAuthenticationTokenAudience", r.text
    assert error["message"] == (
        f"The access token has been obtained for wrong audience or resource '{vault_aud}'. "
        f"It should exactly match with one of the allowed audiences {ARM_AUDIENCES}."), r.text


def test_arm_refuses_missing_and_forged_tokens(vault, credential, creds, rest_url, ca_file):
    url = (f"{rest_url}/subscriptions/{creds['subscriptionId']}/resourceGroups/{RESOURCE_GROUP}"
           f"/providers/Microsoft.KeyVault/vaults/{vault.name}?api-version={ARM_KV_API}")
    r = requests.get(url, verify=ca_file)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "AuthenticationFailed", r.text
    assert r.json()["error"]["message"] == \
        "Authentication failed. The 'Authorization' header is missing.", r.text
    real = credential.get_token(ARM_SCOPE).token
    header_b64, claims_b64, _sig = real.split(".")
    forged = f"{header_b64}.{claims_b64}.{b64url(os.urandom(64))}"
    r = requests.get(url, headers={"Authorization": f"Bearer {forged}"}, verify=ca_file)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "InvalidAuthenticationToken", r.text
    assert r.json()["error"]["message"] == "The access token is invalid.", r.text


# ---- (c) a second principal without unwrapKey ----------------------------------------------

@pytest.fixture(scope="module")
def reader(rest_url, admin_headers, ca_file, creds):
    """A second service principal, made through the admin API."""
    r = requests.post(f"{rest_url}/_cmksim/principals", headers=admin_headers(),
                      json={"displayName": unique("sdk-reader")}, verify=ca_file)
    assert r.status_code in (200, 201), r.text
    body = r.json()
    for field in ("tenantId", "clientId", "clientSecret", "objectId"):
        assert body.get(field), r.text
    assert body["tenantId"] == creds["tenantId"]
    body["credential"] = make_credential(body["tenantId"], body["clientId"],
                                         body["clientSecret"], creds["authorityHost"], ca_file)
    return body


def test_second_principal_without_unwrap_key_gets_the_exact_forbidden(
        reader, vault, kv_mgmt, key_client, credential, creds):
    key = key_client.create_rsa_key(unique("reader-key"), size=2048,
                                    key_operations=["wrapKey", "unwrapKey"])
    granted = kv_mgmt.vaults.update_access_policy(
        RESOURCE_GROUP, vault.name, "add",
        kvm.VaultAccessPolicyParameters(properties=kvm.VaultAccessPolicyProperties(
            access_policies=[kvm.AccessPolicyEntry(
                tenant_id=reader["tenantId"], object_id=reader["objectId"],
                permissions=kvm.Permissions(keys_property=["get", "wrapKey"]))])))
    entries = {e.object_id: e for e in granted.properties.access_policies}
    assert reader["objectId"] in entries
    assert {plain(p) for p in entries[reader["objectId"]].permissions.keys_property} == \
        {"get", "wrapKey"}

    # get is granted: the crypto client downloads the key, wraps locally, unwraps remotely.
    crypto = CryptographyClient(key.id, reader["credential"])
    wrapped = crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, os.urandom(32))
    with pytest.raises(HttpResponseError) as refused:
        crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped.encrypted_key)
    claims = jwt_parts(reader["credential"].get_token(VAULT_SCOPE).token)[1]
    err = refused.value
    assert err.status_code == 403, err
    assert err.error.code == "Forbidden", err
    assert err.error.message == (
        f"The user, group or application 'appid={reader['clientId']};oid={reader['objectId']};"
        f"iss={claims['iss']}' does not have keys unwrapKey permission on key vault "
        f"'{vault.name};location={vault.location}'. For help resolving this issue, please see "
        "https://go.microsoft.com/fwlink/?linkid=2125287"), err.error.message
    assert claims["iss"] == issuer(creds["tenantId"])
    assert (err.error.innererror or {}).get("code") == "AccessDenied", err.error.innererror

    # The admin, who has unwrapKey, unwraps the same bytes.
    admin_crypto = CryptographyClient(key, credential)
    assert len(admin_crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256,
                                       wrapped.encrypted_key).key) == 32


def test_second_principal_without_list_is_refused(reader, vault, creds):
    # The reader has get and wrapKey only: list is refused with the same template.
    client = KeyClient(vault_url(vault.name), reader["credential"])
    with pytest.raises(HttpResponseError) as refused:
        list(client.list_properties_of_keys())
    err = refused.value
    assert err.status_code == 403, err
    assert err.error.code == "Forbidden"
    assert f"does not have keys list permission on key vault '{vault.name};location=" \
           f"{vault.location}'" in err.error.message, err.error.message


# ---- the admin API ----------------------------------------------------------------------------

def test_admin_api_needs_the_admin_token(rest_url, reader, admin_headers, ca_file):
    r = requests.get(f"{rest_url}/_cmksim/clock", verify=ca_file)
    assert r.status_code == 401, r.text
    other = reader["credential"].get_token(ARM_SCOPE).token
    r = requests.get(f"{rest_url}/_cmksim/clock", headers={"Authorization": f"Bearer {other}"},
                     verify=ca_file)
    assert r.status_code == 403, r.text
    r = requests.get(f"{rest_url}/_cmksim/clock", headers=admin_headers(), verify=ca_file)
    assert r.status_code == 200, r.text
    clock = r.json()
    assert clock["timeScale"] == 60, clock
    assert clock["simulatedNow"].endswith("Z"), clock


@pytest.mark.parametrize("chaos,status,code,message", [
    # crates/keyvault/src/errors.rs ServiceUnavailable / Throttled
    ({"mode": "error_rate", "errorRate": 1.0}, 503, "ServiceUnavailable",
     "The service is temporarily unavailable. Please retry later."),
    ({"mode": "throttle", "retryAfterSeconds": 7}, 429, "Throttled",
     "Request was not processed because too many requests were received. Reason: "
     "VaultRequestTypeLimitReached"),
    # down = a refused connection behind the door: no Azure body exists, the door says 503.
    ({"mode": "down"}, 503, "ServiceUnavailable", None),
])
def test_chaos_over_http(rest_url, admin_headers, ca_file, vault, credential, key_client, chaos,
                         status, code, message):
    key = key_client.create_rsa_key(unique("chaos-key"), size=2048)
    r = requests.get(f"{rest_url}/_cmksim/chaos", headers=admin_headers(), verify=ca_file)
    assert r.status_code == 200, r.text
    assert r.json()["keyvault"]["mode"] == "up", r.text
    # retry_total=0 (an azure-core option): see the fault itself, not ten retries of it.
    client = KeyClient(vault_url(vault.name), credential, retry_total=0)
    r = requests.put(f"{rest_url}/_cmksim/chaos", headers=admin_headers(), verify=ca_file,
                     json={"keyvault": chaos})
    try:
        assert r.status_code == 200, r.text
        assert r.json()["keyvault"]["mode"] == chaos["mode"], r.text
        with pytest.raises(HttpResponseError) as refused:
            client.get_key(key.name)
        err = refused.value
        assert err.status_code == status, err
        assert err.error.code == code, err
        if message is not None:
            assert err.error.message == message, err
        if status == 429:
            assert err.response.headers.get("Retry-After") == str(chaos["retryAfterSeconds"])
    finally:
        r = requests.put(f"{rest_url}/_cmksim/chaos", headers=admin_headers(), verify=ca_file,
                         json={"keyvault": {"mode": "up"}})
        assert r.status_code == 200, r.text
    assert client.get_key(key.name).properties.version == key.properties.version


def test_only_an_administrator_makes_principals_and_grants_roles(reader, rest_url, ca_file,
                                                                 creds):
    """Issue 17: the identity service decides, the door forwards the caller's token."""
    body = {"displayName": unique("sdk-intruder")}
    r = requests.post(f"{rest_url}/_cmksim/principals", json=body, verify=ca_file)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "AuthenticationFailed", r.text
    token = reader["credential"].get_token(ARM_SCOPE).token
    as_reader = {"Authorization": f"Bearer {token}"}
    r = requests.post(f"{rest_url}/_cmksim/principals", headers=as_reader, json=body,
                      verify=ca_file)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "AuthorizationFailed", r.text
    # Nor may it make itself Owner of the administrator's subscription.
    r = requests.post(f"{rest_url}/_cmksim/roleAssignments", headers=as_reader,
                      json={"principalId": reader["objectId"], "role": "Owner",
                            "scope": f"/subscriptions/{creds['subscriptionId']}"},
                      verify=ca_file)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "AuthorizationFailed", r.text
    assert "Microsoft.Authorization/roleAssignments/write" in r.json()["error"]["message"]
