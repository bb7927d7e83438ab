"""Key Vault through azure-mgmt-keyvault (the vault) and azure-keyvault-keys (keys and crypto),
reached at https://{vault}.vault.azure.net through HTTPS_PROXY, as a user would."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
from datetime import datetime, timedelta, timezone
from urllib.parse import urlparse

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.keyvault.keys import KeyClient, KeyType
from azure.keyvault.keys.crypto import (CryptographyClient, EncryptionAlgorithm,
                                        KeyWrapAlgorithm, SignatureAlgorithm)

from conftest import (ALL_KEY_PERMISSIONS, RESOURCE_GROUP, VAULT_SCOPE, make_credential, plain,
                      unique, vault_url)

ALL_OPS = ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"]


def key_not_found(name: str) -> str:
    return (f"A key with (name/id) {name} was not found in this key vault. If you recently "
            "deleted this key you may be able to recover it using the correct recovery command. "
            "For help resolving this issue, please see "
            "https://go.microsoft.com/fwlink/?linkid=2125182")


def test_vault_was_created_as_asked(kv_mgmt, vault, creds):
    got = kv_mgmt.vaults.get(RESOURCE_GROUP, vault.name)
    p = got.properties
    assert got.name == vault.name
    assert got.location == "eastus"
    assert got.id.lower().endswith(
        f"/resourcegroups/{RESOURCE_GROUP}/providers/microsoft.keyvault/vaults/{vault.name}".lower())
    assert p.tenant_id == creds["tenantId"]
    assert (p.sku.family, p.sku.name) == ("A", "premium")
    assert p.enable_soft_delete is True
    assert p.enable_purge_protection is True
    assert p.soft_delete_retention_in_days == 7
    assert p.provisioning_state == "Succeeded"
    assert p.vault_uri.rstrip("/") == vault_url(vault.name)
    admin = [e for e in p.access_policies if e.object_id == creds["objectId"]]
    assert admin and {plain(k) for k in admin[0].permissions.keys_property} >= \
        set(ALL_KEY_PERMISSIONS)


def test_create_get_list_update_rotate(key_client, vault):
    name = unique("rsa")
    expires = (datetime.now(timezone.utc) + timedelta(days=30)).replace(microsecond=0)
    key = key_client.create_rsa_key(name, size=2048, key_operations=["wrapKey", "unwrapKey"],
                                    tags={"env": "test"}, enabled=True, expires_on=expires)
    version = key.properties.version
    assert key.name == name and version
    assert key.id == f"{vault_url(vault.name)}/keys/{name}/{version}"
    assert key.properties.vault_url == vault_url(vault.name)
    assert key.key_type == KeyType.rsa
    assert len(key.key.n) == 256 and key.key.e == b"\x01\x00\x01"
    assert sorted(plain(op) for op in key.key_operations) == ["unwrapKey", "wrapKey"]
    assert key.properties.enabled is True
    assert key.properties.tags == {"env": "test"}
    assert key.properties.expires_on == expires
    assert key.properties.created_on is not None
    assert key.properties.recovery_level  # e.g. "Recoverable" with purge protection

    # get, with and without version (GET /keys/{n}/ and /keys/{n}/{v})
    assert key_client.get_key(name).id == key.id
    assert key_client.get_key(name, version).id == key.id

    # list and list versions
    assert name in {k.name for k in key_client.list_properties_of_keys()}
    versions = list(key_client.list_properties_of_key_versions(name))
    assert [v.version for v in versions] == [version]

    # update: disable, then enable with new tags and expiry (PATCH /keys/{n}/ and /keys/{n}/{v})
    disabled = key_client.update_key_properties(name, enabled=False)
    assert disabled.properties.enabled is False
    assert disabled.properties.tags == {"env": "test"}  # absent fields stay as they were
    later = expires + timedelta(days=30)
    enabled = key_client.update_key_properties(name, version, enabled=True,
                                               tags={"env": "prod"}, expires_on=later)
    assert enabled.properties.enabled is True
    assert enabled.properties.tags == {"env": "prod"}
    assert enabled.properties.expires_on == later
    assert enabled.properties.updated_on >= key.properties.updated_on

    # rotate: a new current version
    rotated = key_client.rotate_key(name)
    assert rotated.properties.version != version
    assert key_client.get_key(name).properties.version == rotated.properties.version
    assert {v.version for v in key_client.list_properties_of_key_versions(name)} == \
        {version, rotated.properties.version}


def test_hsm_key_in_a_premium_vault(key_client):
    key = key_client.create_rsa_key(unique("hsm"), size=2048, hardware_protected=True)
    assert key.key_type == KeyType.rsa_hsm


def test_missing_key_is_404_with_the_exact_message(key_client):
    with pytest.raises(ResourceNotFoundError) as missing:
        key_client.get_key("no-such-key")
    assert missing.value.status_code == 404
    assert missing.value.error.code == "KeyNotFound"
    assert missing.value.error.message == key_not_found("no-such-key")


def test_delete_get_deleted_recover(key_client):
    name = unique("del")
    key = key_client.create_rsa_key(name, size=2048)
    deleted = key_client.begin_delete_key(name).result()
    assert deleted.name == name
    assert deleted.recovery_id == f"{key.properties.vault_url}/deletedkeys/{name}"
    assert deleted.deleted_date is not None and deleted.scheduled_purge_date is not None
    assert key_client.get_deleted_key(name).id == key.id

    with pytest.raises(ResourceNotFoundError) as gone:
        key_client.get_key(name)
    assert gone.value.error.code == "KeyNotFound"

    with pytest.raises(ResourceExistsError) as taken:
        key_client.create_rsa_key(name, size=2048)
    assert taken.value.status_code == 409
    assert taken.value.error.code == "Conflict"
    assert taken.value.error.message == (
        f"Key {name} is currently in a deleted but recoverable state, and its name cannot be "
        "reused; in this state, the key can only be recovered or purged.")

    recovered = key_client.begin_recover_deleted_key(name).result()
    assert recovered.id == key.id
    assert key_client.get_key(name).properties.version == key.properties.version
    with pytest.raises(ResourceNotFoundError) as not_deleted:
        key_client.get_deleted_key(name)
    assert not_deleted.value.error.message == f"Deleted Key not found: {name}"


def test_purge_is_refused_under_purge_protection(key_client, vault):
    name = unique("purge")
    key_client.create_rsa_key(name, size=2048)
    key_client.begin_delete_key(name).result()
    with pytest.raises(HttpResponseError) as refused:
        key_client.purge_deleted_key(name)
    err = refused.value
    assert err.status_code == 403, err
    assert err.error.code == "Forbidden"
    assert err.error.message == (
        'Operation "purge" is not allowed because purge protection is enabled for this vault. '
        "Key Vault service will automatically purge it after the retention period has passed. "
        f"Vault: {vault.name};location={vault.location}")
    # still there, still recoverable
    assert key_client.get_deleted_key(name).name == name


def test_cryptography_client_wraps_locally_and_unwraps_remotely(key_client, credential):
    key = key_client.create_rsa_key(unique("crypto"), size=2048, key_operations=ALL_OPS)
    secret = os.urandom(32)
    for crypto in (
        CryptographyClient(key, credential),                    # key material given: no GET
        CryptographyClient(key.id, credential),                  # GET /keys/{n}/{v} first
        CryptographyClient(key.id.rsplit("/", 1)[0], credential),  # versionless: GET /keys/{n}/
    ):
        for alg in (KeyWrapAlgorithm.rsa_oaep, KeyWrapAlgorithm.rsa_oaep_256):
            wrapped = crypto.wrap_key(alg, secret)
            assert wrapped.key_id.startswith(key.id.rsplit("/", 1)[0])
            unwrapped = crypto.unwrap_key(alg, wrapped.encrypted_key)
            assert unwrapped.key == secret
        encrypted = crypto.encrypt(EncryptionAlgorithm.rsa_oaep_256, b"attack at dawn")
        assert crypto.decrypt(EncryptionAlgorithm.rsa_oaep_256,
                              encrypted.ciphertext).plaintext == b"attack at dawn"
        digest = hashlib.sha256(b"log block").digest()
        signed = crypto.sign(SignatureAlgorithm.rs256, digest)  # remote
        assert crypto.verify(SignatureAlgorithm.rs256, digest, signed.signature).is_valid


def test_unwrap_fails_with_403_while_the_key_is_disabled(key_client, credential):
    key = key_client.create_rsa_key(unique("disable"), size=2048,
                                    key_operations=["wrapKey", "unwrapKey"])
    crypto = CryptographyClient(key, credential)
    wrapped = crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, os.urandom(32))
    key_client.update_key_properties(key.name, enabled=False)
    with pytest.raises(HttpResponseError) as refused:
        crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped.encrypted_key)
    err = refused.value
    assert err.status_code == 403, err
    assert err.error.code == "Forbidden"
    assert err.error.message == "Operation unwrapKey is not allowed on a disabled key."
    assert (err.error.innererror or {}).get("code") == "KeyDisabled", err.error.innererror
    key_client.update_key_properties(key.name, enabled=True)
    assert len(crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped.encrypted_key).key) == 32


def test_wrap_with_a_key_that_does_not_allow_it_is_refused(key_client, credential):
    # key_ops without wrapKey: the SDK's local wrap refuses, falls back to the service, which
    # answers the REST twin of the gRPC KeyOperationForbidden.
    key = key_client.create_rsa_key(unique("noops"), size=2048, key_operations=["sign"])
    crypto = CryptographyClient(key, credential)
    with pytest.raises(HttpResponseError) as refused:
        crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, os.urandom(32))
    err = refused.value
    assert err.status_code == 403, err
    assert err.error.code == "Forbidden"
    assert err.error.message == "Operation wrapKey is not permitted on this key."
    assert (err.error.innererror or {}).get("code") == "KeyOperationForbidden"


def test_older_api_versions_work_and_an_unknown_one_is_refused(vault, credential, ca_file,
                                                                key_client):
    name = unique("apiver")
    key_client.create_rsa_key(name, size=2048)
    for version in ("7.4", "7.5", "7.6"):
        client = KeyClient(vault_url(vault.name), credential, api_version=version)
        assert client.get_key(name).name == name
    token = credential.get_token(VAULT_SCOPE).token
    r = requests.get(f"{vault_url(vault.name)}/keys/{name}?api-version=1999-01-01",
                     headers={"Authorization": f"Bearer {token}"}, verify=ca_file)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "BadParameter", r.text
    assert "1999-01-01" in r.json()["error"]["message"], r.text


def test_camel_case_operation_paths_are_accepted(vault, credential, ca_file, key_client):
    # .NET sends /wrapKey and /unwrapKey; Python lowercase: both reach the same operation.
    key = key_client.create_rsa_key(unique("camel"), size=2048,
                                    key_operations=["wrapKey", "unwrapKey"])
    token = credential.get_token(VAULT_SCOPE).token
    headers = {"Authorization": f"Bearer {token}"}
    secret = os.urandom(32)
    value = base64.urlsafe_b64encode(secret).rstrip(b"=").decode()
    r = requests.post(f"{key.id}/wrapKey?api-version=7.4", headers=headers, verify=ca_file,
                      json={"alg": "RSA-OAEP-256", "value": value})
    assert r.status_code == 200, r.text
    assert r.json()["kid"] == key.id
    r = requests.post(f"{key.id}/unwrapKey?api-version=7.4", headers=headers, verify=ca_file,
                      json={"alg": "RSA-OAEP-256", "value": r.json()["value"]})
    assert r.status_code == 200, r.text
    assert r.json()["value"] == value


def test_everything_through_the_proxy(monkeypatch, creds, ca_file, vault, key_client):
    # A user who exports only HTTPS_PROXY (no NO_PROXY) sends the token request and ARM calls
    # through the door's CONNECT as well.
    monkeypatch.delenv("NO_PROXY", raising=False)
    name = unique("proxy")
    key_client.create_rsa_key(name, size=2048)
    cred = make_credential(creds["tenantId"], creds["clientId"], creds["clientSecret"],
                           creds["authorityHost"], ca_file)
    assert cred.get_token(VAULT_SCOPE).token
    assert KeyClient(vault_url(vault.name), cred).get_key(name).name == name
    from azure.mgmt.keyvault import KeyVaultManagementClient
    mgmt = KeyVaultManagementClient(cred, creds["subscriptionId"], base_url=creds["armEndpoint"])
    assert mgmt.vaults.get(RESOURCE_GROUP, vault.name).name == vault.name


def test_vault_by_localhost_subdomain(creds, ca_file, vault, key_client, credential):
    # {vault}.localhost:PORT works without any DNS change where *.localhost resolves to the
    # loopback (RFC 6761; systemd-resolved, macOS); the challenge resource is not a parent of
    # that host, so verify_challenge_resource=False, as SPEC §9 tells users.
    port = urlparse(creds["restUrl"]).port
    host = f"{vault.name}.localhost"
    try:
        socket.getaddrinfo(host, port)
    except OSError:
        pytest.skip(f"{host} does not resolve on this machine")
    name = unique("lh")
    key_client.create_rsa_key(name, size=2048)
    client = KeyClient(f"https://{host}:{port}", credential, verify_challenge_resource=False)
    got = client.get_key(name)
    assert got.name == name
    assert got.id.startswith(f"https://{host}:{port}/keys/{name}/")
