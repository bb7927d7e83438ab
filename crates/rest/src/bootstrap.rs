//! The first start's credentials: the identity authority's bootstrap administrator (its tenant,
//! client id and secret), a subscription, and the door's URLs, kept in
//! `DATA_DIR/credentials.json`.
//!
//! A user must be able to copy what they need into their own program. The identity authority
//! makes its administrator itself on its own first start and writes its credentials to its
//! `identity-admin.json` ([`cmksim_identity::authority::ADMIN_CREDENTIALS_FILE`]): no one can
//! create a principal without an administrator's token, the door included. On the door's first
//! start it reads that file ([`crate::RestConfig::admin_credentials`]), draws a subscription id,
//! and writes its own file (whole, under a temporary name, then renamed; mode 0600 since it
//! holds a secret). Later starts read it back,
//! and check that the authority still knows the principal (a Key Vault data directory wiped
//! under a kept `credentials.json` is refused in one sentence, not served with dead
//! credentials). Every start makes sure the administrator is Owner of its subscription (a role
//! assignment in the identity authority; assigning it again changes nothing), so that it may
//! manage clusters and workspaces, send logs and query them there. [`Credentials::exports`] are the `export` lines `cmksim serve` prints once.

use std::path::{Path, PathBuf};

use cmksim_identity::audience;
use cmksim_proto::identity::v1 as idp;
use cmksim_sim::SeedTree;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;

use crate::error::RestError;

/// The file name in the data directory.
pub const CREDENTIALS_FILE: &str = "credentials.json";
/// The display name of the administrator principal (the identity authority's bootstrap one).
pub const ADMIN_NAME: &str = cmksim_identity::authority::ADMIN_NAME;
/// The name of the default tenant (the bootstrap administrator's).
pub const TENANT_NAME: &str = cmksim_identity::authority::ADMIN_TENANT_NAME;

/// What a user needs to act as the administrator (camelCase on disk, like Azure's JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub tenant_id: String,
    pub subscription_id: String,
    /// The administrator's application (client) id.
    pub client_id: String,
    pub client_secret: String,
    /// The administrator's object id (what access policies name).
    pub object_id: String,
    /// `AZURE_AUTHORITY_HOST`: the door's URL.
    pub authority_host: String,
    /// The ARM endpoint (`base_url` of the management SDKs): the door's URL.
    pub arm_endpoint: String,
    /// The door's URL.
    pub rest_url: String,
    /// `HTTPS_PROXY` for clients that address vaults by host: the door's port, plain HTTP.
    pub https_proxy: String,
    /// The PEM file to trust (`REQUESTS_CA_BUNDLE`, `SSL_CERT_FILE`).
    pub ca_file: String,
}

impl Credentials {
    /// The `export` lines a user pastes into a shell (values single-quoted).
    pub fn exports(&self) -> Vec<String> {
        let pairs = [
            ("AZURE_TENANT_ID", &self.tenant_id),
            ("AZURE_CLIENT_ID", &self.client_id),
            ("AZURE_CLIENT_SECRET", &self.client_secret),
            ("AZURE_AUTHORITY_HOST", &self.authority_host),
            ("AZURE_SUBSCRIPTION_ID", &self.subscription_id),
            ("CMKSIM_ADMIN_OBJECT_ID", &self.object_id),
            ("REQUESTS_CA_BUNDLE", &self.ca_file),
            ("SSL_CERT_FILE", &self.ca_file),
            ("CMKSIM_ARM_ENDPOINT", &self.arm_endpoint),
            ("CMKSIM_HTTPS_PROXY", &self.https_proxy),
        ];
        pairs
            .iter()
            .map(|(name, value)| format!("export {name}='{}'", value.replace('\'', "'\\''")))
            .collect()
    }

    /// The door's URLs as seen now (the port may differ from the first start's).
    fn at(mut self, public_url: &str, ca_file: &Path) -> Credentials {
        self.authority_host = public_url.to_string();
        self.arm_endpoint = public_url.to_string();
        self.rest_url = public_url.to_string();
        self.https_proxy = public_url.replacen("https://", "http://", 1);
        self.ca_file = ca_file.display().to_string();
        self
    }
}

/// Reads `DATA_DIR/credentials.json`, or creates the tenant, principal and file on the first
/// start. Returns the credentials and whether they were made now.
pub async fn load_or_create(
    data_dir: &Path,
    identity: &Channel,
    public_url: &str,
    ca_file: &Path,
    seed: u64,
    admin_file: &Path,
) -> Result<(Credentials, bool), RestError> {
    let path = data_dir.join(CREDENTIALS_FILE);
    let mut client = idp::identity_client::IdentityClient::new(identity.clone());
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| RestError::startup(format!("cannot read {}: {e}", path.display())))?;
        let stored: Credentials = serde_json::from_str(&text).map_err(|e| {
            RestError::startup(format!("{} is not a credentials file: {e}", path.display()))
        })?;
        let check = client
            .issue_token(idp::IssueTokenRequest {
                object_id: stored.object_id.clone(),
                secret: stored.client_secret.clone(),
                audience: audience::MANAGEMENT.to_string(),
                lifetime_seconds: 0,
            })
            .await;
        if let Err(status) = check {
            return Err(RestError::startup(format!(
                "{} names an administrator the identity authority does not accept ({}): the Key \
                 Vault data directory is not the one these credentials were made with; remove \
                 the file to make new ones",
                path.display(),
                status.message()
            )));
        }
        let credentials = stored.at(public_url, ca_file);
        administrator_roles(&mut client, &credentials).await?;
        write_credentials(&path, &credentials)?;
        return Ok((credentials, false));
    }
    let admin = cmksim_identity::AdminCredentials::load(admin_file).map_err(|e| {
        RestError::startup(format!(
            "the door's first start needs the identity authority's administrator: {e} (Key \
             Vault writes it on its first start, in DATA_DIR/identity/ for `serve keyvault`, \
             DATA_DIR/keyvault/identity/ for `serve all`; give --admin-credentials FILE)"
        ))
    })?;
    let mut rng = SeedTree::new(seed).stream("rest/bootstrap");
    let credentials = Credentials {
        tenant_id: admin.tenant_id,
        subscription_id: cmksim_sim::ids::guid(&mut rng),
        client_id: admin.client_id,
        client_secret: admin.client_secret,
        object_id: admin.object_id,
        authority_host: String::new(),
        arm_endpoint: String::new(),
        rest_url: String::new(),
        https_proxy: String::new(),
        ca_file: String::new(),
    }
    .at(public_url, ca_file);
    administrator_roles(&mut client, &credentials).await?;
    write_credentials(&path, &credentials)?;
    Ok((credentials, true))
}

/// The administrator's roles (idempotent): Owner of its subscription; and, at the root scope,
/// Monitoring Metrics Publisher and Log Analytics Reader, because the door acts with the
/// administrator's principal as Azure Monitor's own front end (it writes into a rule's
/// workspaces and reads a workspace once it has checked the caller's role itself).
async fn administrator_roles(
    client: &mut idp::identity_client::IdentityClient<Channel>,
    credentials: &Credentials,
) -> Result<(), RestError> {
    use cmksim_identity::Role;
    // The administrator grants itself these roles: its token, a management one.
    let token = client
        .issue_token(idp::IssueTokenRequest {
            object_id: credentials.object_id.clone(),
            secret: credentials.client_secret.clone(),
            audience: audience::MANAGEMENT.to_string(),
            lifetime_seconds: 0,
        })
        .await
        .map_err(|e| RestError::startup(format!("the administrator's token: {}", e.message())))?
        .into_inner()
        .token;
    let subscription = format!("/subscriptions/{}", credentials.subscription_id);
    let roles = [
        (subscription.as_str(), Role::Owner),
        (
            cmksim_identity::roles::ROOT_SCOPE,
            Role::MonitoringMetricsPublisher,
        ),
        (cmksim_identity::roles::ROOT_SCOPE, Role::LogAnalyticsReader),
    ];
    for (scope, role) in roles {
        client
            .create_role_assignment(crate::auth::forward(
                Some(&token),
                idp::CreateRoleAssignmentRequest {
                    scope: scope.to_string(),
                    role: role.name().to_string(),
                    principal_id: credentials.object_id.clone(),
                    name: String::new(),
                },
            ))
            .await
            .map_err(|e| {
                RestError::startup(format!(
                    "giving the administrator {} at {scope}: {}",
                    role.name(),
                    e.message()
                ))
            })?;
    }
    Ok(())
}

/// Writes the file whole: a temporary file (mode 0600), flushed, then renamed over the old one.
fn write_credentials(path: &Path, credentials: &Credentials) -> Result<(), RestError> {
    use std::io::Write;
    let fail = |what: &str, e: std::io::Error| {
        RestError::startup(format!("cannot {what} {}: {e}", path.display()))
    };
    let text = serde_json::to_string_pretty(credentials)
        .map_err(|e| RestError::startup(format!("credentials: {e}")))?;
    let tmp: PathBuf = path.with_extension("json.tmp");
    if tmp.exists() {
        std::fs::remove_file(&tmp).map_err(|e| fail("remove the leftover", e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(|e| fail("write", e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(|e| fail("write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| fail("write", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_quote_values_for_a_posix_shell() {
        let c = Credentials {
            tenant_id: "t".into(),
            subscription_id: "s".into(),
            client_id: "c".into(),
            client_secret: "it's".into(),
            object_id: "o".into(),
            authority_host: String::new(),
            arm_endpoint: String::new(),
            rest_url: String::new(),
            https_proxy: String::new(),
            ca_file: String::new(),
        }
        .at("https://127.0.0.1:8443", Path::new("/d/tls/cert.pem"));
        let lines = c.exports();
        assert!(lines.contains(&"export AZURE_CLIENT_SECRET='it'\\''s'".to_string()));
        assert!(lines.contains(&"export AZURE_AUTHORITY_HOST='https://127.0.0.1:8443'".to_string()));
        assert_eq!(c.https_proxy, "http://127.0.0.1:8443");
    }
}
