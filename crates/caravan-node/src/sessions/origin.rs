//! The node's public origin: where people reach it (`--public-url`), which every sign-in
//! message must name. Taken from configuration, never from a request's `Host` header, which the
//! client chooses.

use std::fmt;

/// The scheme, host and port of the node's public URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicOrigin {
    scheme: String,
    /// Lower case, as hosts compare.
    host: String,
    /// The port when it is not the scheme's default.
    port: Option<u16>,
}

impl PublicOrigin {
    /// Parses `http(s)://host[:port][/…]`; a path after the authority is allowed and ignored.
    pub fn parse(url: &str) -> Result<PublicOrigin, String> {
        let bad = |why: &str| {
            format!(
                "the public URL {url:?} {why}; give the address people open, such as https://caravan.example or http://127.0.0.1:8080"
            )
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("has no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(bad("is neither http:// nor https://"));
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (host, port) = split_authority(authority).ok_or_else(|| bad("has no host"))?;
        if authority.contains('@') {
            return Err(bad("names a user; leave credentials out"));
        }
        let port = match port {
            Some(text) => Some(
                text.parse::<u16>()
                    .map_err(|_| bad("has a port that is not a number from 0 to 65535"))?,
            ),
            None => None,
        };
        let mut origin = PublicOrigin {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        };
        if origin.port == Some(origin.default_port()) {
            origin.port = None;
        }
        Ok(origin)
    }

    fn default_port(&self) -> u16 {
        if self.is_https() { 443 } else { 80 }
    }

    /// Whether people reach the node over TLS: its session cookies are then `Secure`.
    pub fn is_https(&self) -> bool {
        self.scheme == "https"
    }

    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// What a sign-in message's domain must be: the host, and the port when it is not the
    /// scheme's default.
    pub fn authority(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }

    /// Whether `authority` (host[:port], as a message or a URI writes it) names this origin's.
    pub fn has_authority(&self, authority: &str) -> bool {
        let Some((host, port)) = split_authority(authority) else {
            return false;
        };
        let port = match port {
            Some(text) => match text.parse::<u16>() {
                Ok(port) if port == self.default_port() => None,
                Ok(port) => Some(port),
                Err(_) => return false,
            },
            None => None,
        };
        host.eq_ignore_ascii_case(&self.host) && port == self.port
    }

    /// Whether `uri` points inside this origin: the same scheme and authority.
    pub fn contains(&self, uri: &str) -> bool {
        let Some((scheme, rest)) = uri.split_once("://") else {
            return false;
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        scheme.eq_ignore_ascii_case(&self.scheme) && self.has_authority(authority)
    }
}

impl fmt::Display for PublicOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority())
    }
}

/// `host` and the port text of an authority (`[v6]:port` included); `None` without a host.
fn split_authority(authority: &str) -> Option<(&str, Option<&str>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &authority[..end + 2];
        match &rest[end + 1..] {
            "" => (host, None),
            tail => (host, Some(tail.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    (!host.is_empty()).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_matches_its_own_authority_and_uris_and_nothing_else() {
        let origin = PublicOrigin::parse("https://Caravan.example:443/app").unwrap();
        assert_eq!(origin.authority(), "caravan.example");
        assert_eq!(origin.to_string(), "https://caravan.example");
        assert!(origin.is_https());
        for same in ["caravan.example", "CARAVAN.example:443"] {
            assert!(origin.has_authority(same), "{same}");
        }
        for other in [
            "caravan.example:8443",
            "evil.example",
            "caravan.example.evil",
            "",
        ] {
            assert!(!origin.has_authority(other), "{other}");
        }
        assert!(origin.contains("https://caravan.example/login?next=/"));
        for other in [
            "http://caravan.example/",
            "https://caravan.example.evil/",
            "https://evil.example/caravan.example",
            "caravan.example",
        ] {
            assert!(!origin.contains(other), "{other}");
        }

        let local = PublicOrigin::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(local.authority(), "127.0.0.1:8080");
        assert!(!local.is_https());
        assert!(!local.has_authority("127.0.0.1"));
        let v6 = PublicOrigin::parse("http://[::1]:9000/").unwrap();
        assert_eq!(v6.authority(), "[::1]:9000");

        for bad in [
            "caravan.example",
            "ftp://x",
            "https://",
            "https://a:b",
            "https://u@h",
        ] {
            let error = PublicOrigin::parse(bad).unwrap_err();
            assert!(error.contains("give the address people open"), "{error}");
        }
    }
}
