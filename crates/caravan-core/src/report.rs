//! Error text for people. Transport libraries wrap the cause a person can act on (a refused
//! connection, an untrusted certificate) in outer errors whose own text says only "error
//! sending request"; these helpers bring the cause into the message.

use std::error::Error;

/// `error` followed by each error that caused it, joined with ": ". A cause whose text the
/// message already holds is left out, so wrappers that repeat their source read once.
pub fn with_causes(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let more = next.to_string();
        if !more.is_empty() && !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = next.source();
    }
    text
}

/// When `causes` (from [`with_causes`]) says a server's TLS certificate was refused, what the
/// operator can do about it; otherwise empty.
pub fn certificate_hint(causes: &str) -> &'static str {
    if causes.contains("certificate") {
        "; if the server's certificate comes from a private certificate authority, give that \
         authority's certificate (PEM) with --extra-ca-certs or CARAVAN_EXTRA_CA_CERTS"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|l| l as &(dyn Error + 'static))
        }
    }

    #[test]
    fn the_cause_a_person_can_act_on_reaches_the_message_once() {
        let error = Layer(
            "error sending request",
            Some(Box::new(Layer(
                "client error (Connect)",
                Some(Box::new(Layer(
                    "invalid peer certificate: UnknownIssuer",
                    Some(Box::new(Layer("UnknownIssuer", None))),
                ))),
            ))),
        );
        let text = with_causes(&error);
        assert_eq!(
            text,
            "error sending request: client error (Connect): invalid peer certificate: UnknownIssuer"
        );
        assert!(certificate_hint(&text).contains("--extra-ca-certs"));
        assert_eq!(certificate_hint("connection refused"), "");
    }
}
