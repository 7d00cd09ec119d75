//! What `KEYGATE_OIDC_*` say, parsed once at start-up into values that
//! cannot be wrong afterwards: the provider's issuer URL, keygate's client
//! at it, the button's words, the allowed email domains and the role given
//! to people added at their first sign-in.

use std::fmt;

use zeroize::Zeroizing;

/// Longest value of any `KEYGATE_OIDC_*` variable.
const MAX_LEN: usize = 2000;

/// keygate's client secret at the provider. Wiped on drop, never printed.
#[derive(Clone)]
pub struct ProviderSecret(Zeroizing<String>);

impl ProviderSecret {
    pub(super) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ProviderSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProviderSecret(redacted)")
    }
}

/// The company's identity provider, as configured.
#[derive(Debug, Clone)]
pub struct SsoSettings {
    /// The provider's issuer exactly as its discovery document names it
    /// (`KEYGATE_OIDC_ISSUER`).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: ProviderSecret,
    /// The button's words: "Sign in with NAME".
    pub name: String,
    /// Lower-cased; empty: any domain the provider vouches for.
    pub allowed_domains: Vec<String>,
    /// Whom an unknown person from an allowed domain becomes at their first
    /// sign-in (`None`: unknown people are refused).
    pub default_role: Option<String>,
}

/// The variables as given (blank counts as unset), for [`SsoSettings::parse`].
#[derive(Debug, Default, Clone, Copy)]
pub struct SsoVariables<'a> {
    pub issuer: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub client_secret: Option<&'a str>,
    pub name: &'a str,
    pub allowed_domains: Option<&'a str>,
    pub default_role: Option<&'a str>,
}

/// Which variable is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SsoSettingsError {
    Issuer(String),
    ClientId(String),
    ClientSecret(String),
    Name(String),
    AllowedDomains(String),
}

impl SsoSettings {
    /// `None` when no provider is configured (and nothing else of it set).
    pub fn parse(vars: SsoVariables<'_>) -> Result<Option<Self>, SsoSettingsError> {
        use SsoSettingsError as E;
        let Some(issuer) = vars.issuer else {
            let stray = [
                (vars.client_id, "KEYGATE_OIDC_CLIENT_ID"),
                (vars.client_secret, "KEYGATE_OIDC_CLIENT_SECRET"),
                (vars.allowed_domains, "KEYGATE_OIDC_ALLOWED_DOMAINS"),
                (vars.default_role, "KEYGATE_OIDC_DEFAULT_ROLE"),
            ]
            .into_iter()
            .find_map(|(value, name)| value.map(|_| name));
            return match stray {
                Some(name) => Err(E::Issuer(format!(
                    "required with {name}: the provider's issuer URL, such as https://accounts.google.com"
                ))),
                None => Ok(None),
            };
        };
        let issuer = parse_issuer(issuer).map_err(E::Issuer)?;
        let client_id = vars
            .client_id
            .ok_or_else(|| E::ClientId("required with KEYGATE_OIDC_ISSUER".into()))?;
        bounded(client_id).map_err(E::ClientId)?;
        let client_secret = vars
            .client_secret
            .ok_or_else(|| E::ClientSecret("required with KEYGATE_OIDC_ISSUER".into()))?;
        if client_secret.len() > MAX_LEN || client_secret.chars().any(char::is_control) {
            // The value itself is never repeated.
            return Err(E::ClientSecret(format!(
                "must be at most {MAX_LEN} characters without control characters"
            )));
        }
        let name = vars.name.trim();
        if name.is_empty() || name.chars().count() > 60 || name.chars().any(char::is_control) {
            return Err(E::Name(
                "must be 1 to 60 characters without control characters".into(),
            ));
        }
        let allowed_domains = vars
            .allowed_domains
            .map(parse_domains)
            .transpose()
            .map_err(E::AllowedDomains)?
            .unwrap_or_default();
        let default_role = vars.default_role.map(str::to_owned);
        if default_role.is_some() && allowed_domains.is_empty() {
            return Err(E::AllowedDomains(
                "required with KEYGATE_OIDC_DEFAULT_ROLE: say whose people may be added \
                 at their first sign-in, such as example.com"
                    .into(),
            ));
        }
        Ok(Some(Self {
            issuer,
            client_id: client_id.to_owned(),
            client_secret: ProviderSecret(Zeroizing::new(client_secret.to_owned())),
            name: name.to_owned(),
            allowed_domains,
            default_role,
        }))
    }

    /// Whether people of `email`'s domain may sign in through the provider.
    pub fn allows(&self, email: &str) -> bool {
        let domain = email.rsplit_once('@').map_or("", |(_, domain)| domain);
        self.allowed_domains.is_empty() || self.allowed_domains.iter().any(|d| d == domain)
    }
}

fn bounded(text: &str) -> Result<(), String> {
    if text.len() > MAX_LEN || text.chars().any(char::is_control) {
        return Err(format!(
            "must be at most {MAX_LEN} characters without control characters"
        ));
    }
    Ok(())
}

/// An https URL (http only on a loopback host, for trying keygate out),
/// without query or fragment, kept as written: the discovery document must
/// name exactly this issuer.
fn parse_issuer(text: &str) -> Result<String, String> {
    bounded(text)?;
    let url = url::Url::parse(text).map_err(|e| format!("not a valid URL: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(host)) => host.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(
                "must be an https:// URL (plain http only on localhost): the ID token's keys come from it"
                    .into(),
            );
        }
        _ => return Err("must be an https:// URL".into()),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment (OpenID Connect Discovery §4)".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".into());
    }
    Ok(text.to_owned())
}

/// `example.com, example.org` or space-separated; lower-cased.
fn parse_domains(text: &str) -> Result<Vec<String>, String> {
    let domains: Vec<String> = text
        .split([',', ' '])
        .filter(|d| !d.is_empty())
        .map(|d| d.trim_start_matches('@').to_lowercase())
        .collect();
    for domain in &domains {
        let labels_ok = domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
        if !labels_ok || domain.len() > 253 {
            return Err(format!(
                "{domain:?} is not a domain name (such as example.com)"
            ));
        }
    }
    if domains.is_empty() {
        return Err("names no domain".into());
    }
    Ok(domains)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> SsoVariables<'static> {
        SsoVariables {
            issuer: Some("https://accounts.example.com"),
            client_id: Some("keygate"),
            client_secret: Some("s3cret"),
            name: "Example",
            allowed_domains: None,
            default_role: None,
        }
    }

    #[test]
    fn nothing_set_is_no_provider() {
        let vars = SsoVariables {
            name: "single sign-on",
            ..Default::default()
        };
        assert!(SsoSettings::parse(vars).unwrap().is_none());
    }

    #[test]
    fn a_full_configuration_parses() {
        let vars = SsoVariables {
            allowed_domains: Some("Example.com, @example.org"),
            default_role: Some("member"),
            ..full()
        };
        let settings = SsoSettings::parse(vars).unwrap().unwrap();
        assert_eq!(settings.allowed_domains, ["example.com", "example.org"]);
        assert!(settings.allows("ann@example.org"));
        assert!(!settings.allows("ann@example.org.evil.test"));
        assert!(!settings.allows("ann@sub.example.com"));
        assert!(
            !format!("{settings:?}").contains("s3cret"),
            "the client secret is never printed"
        );
    }

    #[test]
    fn every_bad_configuration_names_its_variable() {
        use SsoSettingsError as E;
        let cases = [
            (
                SsoVariables {
                    issuer: None,
                    ..full()
                },
                E::Issuer(String::new()),
            ),
            (
                SsoVariables {
                    issuer: Some("http://idp.example.com"),
                    ..full()
                },
                E::Issuer(String::new()),
            ),
            (
                SsoVariables {
                    issuer: Some("https://idp.example.com/?tenant=1"),
                    ..full()
                },
                E::Issuer(String::new()),
            ),
            (
                SsoVariables {
                    client_id: None,
                    ..full()
                },
                E::ClientId(String::new()),
            ),
            (
                SsoVariables {
                    client_secret: None,
                    ..full()
                },
                E::ClientSecret(String::new()),
            ),
            (
                SsoVariables {
                    name: " ",
                    ..full()
                },
                E::Name(String::new()),
            ),
            (
                SsoVariables {
                    allowed_domains: Some("example..com"),
                    ..full()
                },
                E::AllowedDomains(String::new()),
            ),
            (
                SsoVariables {
                    default_role: Some("member"),
                    ..full()
                },
                E::AllowedDomains(String::new()),
            ),
        ];
        for (vars, expected) in cases {
            let error = SsoSettings::parse(vars).unwrap_err();
            assert_eq!(
                std::mem::discriminant(&error),
                std::mem::discriminant(&expected),
                "{vars:?} gave {error:?}"
            );
        }
    }

    #[test]
    fn plain_http_is_for_loopback_only() {
        for issuer in ["http://127.0.0.1:9000", "http://localhost:9000/realms/x"] {
            let vars = SsoVariables {
                issuer: Some(issuer),
                ..full()
            };
            assert!(SsoSettings::parse(vars).unwrap().is_some(), "{issuer}");
        }
    }
}
