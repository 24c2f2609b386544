//! Sign-In with Ethereum messages (EIP-4361): parsed strictly, rendered canonically.
//!
//! ```text
//! caravan.example wants you to sign in with your Ethereum account:
//! 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266
//!
//! Sign in to caravan.
//!
//! URI: https://caravan.example
//! Version: 1
//! Chain ID: 31337
//! Nonce: 6f1c0d2e9a4b7c3e
//! Issued At: 2026-12-04T14:37:19Z
//! Expiration Time: 2026-12-04T14:47:19Z
//! ```
//!
//! Parsing checks the form the specification's ABNF gives, line by line, and says which line is
//! wrong and what it should hold; it does not decide whether the message is acceptable here —
//! that is [`super::Sessions::sign_in`]'s job. The domain may carry a scheme (`https://host`), as
//! the specification's later revision allows. The address is taken as wallets send it: EIP-55
//! checksummed or all lower case (a mixed-case address with a wrong checksum is refused, since
//! that is a mistyped address). A statement line is optional, and both ways of leaving it out
//! seen in the wild (one blank line or two before `URI:`) are read.

use std::fmt;

use caravan_core::Address;
use caravan_core::calendar::{civil_from_days, days_from_civil};

/// The longest message accepted, in bytes: far above any real sign-in message (a few hundred
/// bytes), low enough that parsing and hashing a hostile one costs nothing.
pub const MAX_MESSAGE_BYTES: usize = 4_096;

const HEADER: &str = " wants you to sign in with your Ethereum account:";

/// A parsed sign-in message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiweMessage {
    /// `https` when the domain line reads `https://host`; none for a bare domain.
    pub scheme: Option<String>,
    /// The RFC 3986 authority the message is for: host, and port when it is not the default.
    pub domain: String,
    pub address: Address,
    /// The address exactly as written, to render the message back byte for byte.
    pub address_text: String,
    pub statement: Option<String>,
    pub uri: String,
    pub version: String,
    pub chain_id: u64,
    pub nonce: String,
    pub issued_at: Timestamp,
    pub expiration_time: Option<Timestamp>,
    pub not_before: Option<Timestamp>,
    pub request_id: Option<String>,
    pub resources: Vec<String>,
}

/// An RFC 3339 date-time as written, with the instant it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timestamp {
    pub text: String,
    /// Milliseconds since the Unix epoch (fractions below a millisecond are dropped).
    pub ms: u64,
}

impl Timestamp {
    /// The instant `ms` milliseconds after the Unix epoch, written as `2026-12-04T14:37:19.250Z`
    /// (seconds alone when there are no milliseconds).
    pub fn from_ms(ms: u64) -> Timestamp {
        let seconds = ms / 1000;
        let (days, rest) = (seconds / 86_400, seconds % 86_400);
        let (year, month, day) = civil_from_days(days as i64);
        let mut text = format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            rest / 3600,
            rest % 3600 / 60,
            rest % 60
        );
        if !ms.is_multiple_of(1000) {
            text.push_str(&format!(".{:03}", ms % 1000));
        }
        text.push('Z');
        Timestamp { text, ms }
    }

    /// Parses an RFC 3339 date-time (`2026-12-04T14:37:19Z`, `…19.5+01:00`).
    pub fn parse(text: &str) -> Result<Timestamp, String> {
        let bad = || {
            format!(
                "{text:?} is not an RFC 3339 date-time such as 2026-12-04T14:37:19Z (UTC) or 2026-12-04T15:37:19+01:00"
            )
        };
        let bytes = text.as_bytes();
        if bytes.len() < 20 || !text.is_ascii() {
            return Err(bad());
        }
        let number = |range: std::ops::Range<usize>| -> Result<u64, String> {
            let part = &text[range];
            if part.bytes().all(|b| b.is_ascii_digit()) {
                part.parse().map_err(|_| bad())
            } else {
                Err(bad())
            }
        };
        let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
        if separators.iter().any(|(at, byte)| bytes[*at] != *byte)
            || !matches!(bytes[10], b'T' | b't' | b' ')
        {
            return Err(bad());
        }
        let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
        let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
        if !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 60
            || year < 1970
        {
            return Err(bad());
        }
        let mut rest = &text[19..];
        let mut millis = 0;
        if let Some(fraction) = rest.strip_prefix('.') {
            let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 9 {
                return Err(bad());
            }
            let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
            millis = padded.parse::<u64>().map_err(|_| bad())?;
            rest = &fraction[digits..];
        }
        let offset_seconds: i64 = match rest {
            "Z" | "z" => 0,
            _ if rest.len() == 6
                && matches!(rest.as_bytes()[0], b'+' | b'-')
                && rest.as_bytes()[3] == b':' =>
            {
                let hours = rest[1..3].parse::<i64>().map_err(|_| bad())?;
                let minutes = rest[4..6].parse::<i64>().map_err(|_| bad())?;
                if hours > 23 || minutes > 59 {
                    return Err(bad());
                }
                let sign = if rest.starts_with('-') { -1 } else { 1 };
                sign * (hours * 3600 + minutes * 60)
            }
            _ => return Err(bad()),
        };
        let days = days_from_civil(year as i64, month, day);
        let local = days * 86_400 + (hour * 3600 + minute * 60 + second.min(59)) as i64;
        let utc = local - offset_seconds;
        let ms = u64::try_from(utc)
            .ok()
            .and_then(|s| s.checked_mul(1000))
            .and_then(|s| s.checked_add(millis))
            .ok_or_else(bad)?;
        Ok(Timestamp {
            text: text.to_owned(),
            ms,
        })
    }
}

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Why a text is not a sign-in message; `line` counts from 1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {why}")]
pub struct SiweParseError {
    pub line: usize,
    pub why: String,
}

/// Reads lines front to back, counting them for error messages.
struct Lines<'a> {
    lines: Vec<&'a str>,
    next: usize,
}

impl<'a> Lines<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.lines.get(self.next).copied()
    }

    fn take(&mut self, what: &str) -> Result<&'a str, SiweParseError> {
        let line = self
            .peek()
            .ok_or_else(|| self.error(format!("{what} is missing")))?;
        self.next += 1;
        Ok(line)
    }

    /// The value of the next line, which must read `{tag}{value}`.
    fn field(&mut self, tag: &str) -> Result<&'a str, SiweParseError> {
        let line = self.take(&format!("the line \"{tag}…\""))?;
        line.strip_prefix(tag).ok_or_else(|| {
            self.error_at(
                self.next - 1,
                format!("expected \"{tag}…\", found {line:?}"),
            )
        })
    }

    /// The value of the next line if it starts with `tag`.
    fn optional(&mut self, tag: &str) -> Option<&'a str> {
        let value = self.peek()?.strip_prefix(tag)?;
        self.next += 1;
        Some(value)
    }

    fn error(&self, why: String) -> SiweParseError {
        self.error_at(self.next, why)
    }

    fn error_at(&self, index: usize, why: String) -> SiweParseError {
        SiweParseError {
            line: index + 1,
            why,
        }
    }
}

/// Whether `text` is an RFC 3986 URI in outline: a scheme, `:`, and no spaces or controls.
fn looks_like_uri(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once(':') else {
        return false;
    };
    let mut scheme_chars = scheme.chars();
    scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme_chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !rest.is_empty()
        && text.chars().all(|c| c.is_ascii_graphic())
}

impl SiweMessage {
    /// Parses a sign-in message; the error names the line and what it should hold.
    pub fn parse(text: &str) -> Result<SiweMessage, SiweParseError> {
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(SiweParseError {
                line: 1,
                why: format!(
                    "the message is {} bytes; a sign-in message is at most {MAX_MESSAGE_BYTES}",
                    text.len()
                ),
            });
        }
        if text.contains('\r') {
            return Err(SiweParseError {
                line: 1,
                why: "lines end with a line feed (\\n) alone; the message holds a carriage return"
                    .into(),
            });
        }
        let mut lines = Lines {
            lines: text.split('\n').collect(),
            next: 0,
        };
        let header = lines.take("the first line")?;
        let origin = header.strip_suffix(HEADER).ok_or_else(|| {
            lines.error_at(
                0,
                format!("the first line must end with {HEADER:?}: this is not a Sign-In with Ethereum message"),
            )
        })?;
        let (scheme, domain) = match origin.split_once("://") {
            Some((scheme, domain)) => (Some(scheme.to_owned()), domain),
            None => (None, origin),
        };
        if domain.is_empty() || !domain.chars().all(|c| c.is_ascii_graphic()) {
            return Err(lines.error_at(
                0,
                format!("{domain:?} is not a domain (host, or host:port)"),
            ));
        }
        let address_text = lines.take("the address line")?;
        let address: Address = address_text
            .parse()
            .map_err(|e| lines.error_at(1, format!("{e}")))?;
        if !lines.take("the blank line after the address")?.is_empty() {
            return Err(lines.error_at(2, "the line after the address must be blank".into()));
        }
        let statement = match lines.peek() {
            Some(line) if !line.is_empty() && !line.starts_with("URI: ") => {
                lines.next += 1;
                if !line.chars().all(|c| c == ' ' || c.is_ascii_graphic()) {
                    return Err(lines.error_at(
                        lines.next - 1,
                        "the statement must be one line of printable ASCII".into(),
                    ));
                }
                if !lines.take("the blank line after the statement")?.is_empty() {
                    return Err(lines.error_at(
                        lines.next - 1,
                        "the statement is one line, followed by a blank line".into(),
                    ));
                }
                Some(line.to_owned())
            }
            Some("") => {
                lines.next += 1;
                None
            }
            _ => None,
        };
        let uri = lines.field("URI: ")?;
        if !looks_like_uri(uri) {
            return Err(lines.error_at(
                lines.next - 1,
                format!("{uri:?} is not a URI such as https://caravan.example/"),
            ));
        }
        let version = lines.field("Version: ")?;
        let chain_text = lines.field("Chain ID: ")?;
        let chain_id = chain_text
            .parse::<u64>()
            .ok()
            .filter(|_| chain_text.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                lines.error_at(
                    lines.next - 1,
                    format!("{chain_text:?} is not a chain id (a whole number, as EIP-155 gives)"),
                )
            })?;
        let nonce = lines.field("Nonce: ")?;
        if nonce.len() < 8 || !nonce.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(lines.error_at(
                lines.next - 1,
                format!("{nonce:?} is not a nonce: at least 8 letters and digits"),
            ));
        }
        let timestamp = |lines: &Lines, text: &str| {
            Timestamp::parse(text).map_err(|why| lines.error_at(lines.next - 1, why))
        };
        let issued_text = lines.field("Issued At: ")?;
        let issued_at = timestamp(&lines, issued_text)?;
        let expiration_time = match lines.optional("Expiration Time: ") {
            Some(text) => Some(timestamp(&lines, text)?),
            None => None,
        };
        let not_before = match lines.optional("Not Before: ") {
            Some(text) => Some(timestamp(&lines, text)?),
            None => None,
        };
        let request_id = lines.optional("Request ID: ").map(str::to_owned);
        let mut resources = Vec::new();
        if lines.optional("Resources:") == Some("") {
            while let Some(resource) = lines.optional("- ") {
                if !looks_like_uri(resource) {
                    return Err(lines.error_at(
                        lines.next - 1,
                        format!("resource {resource:?} is not a URI"),
                    ));
                }
                resources.push(resource.to_owned());
            }
        }
        if let Some(extra) = lines.peek() {
            return Err(lines.error(format!(
                "unexpected {extra:?}; after Issued At come only Expiration Time, Not Before, Request ID and Resources, in that order, and nothing after"
            )));
        }
        Ok(SiweMessage {
            scheme,
            domain: domain.to_owned(),
            address,
            address_text: address_text.to_owned(),
            statement,
            uri: uri.to_owned(),
            version: version.to_owned(),
            chain_id,
            nonce: nonce.to_owned(),
            issued_at,
            expiration_time,
            not_before,
            request_id,
            resources,
        })
    }
}

impl fmt::Display for SiweMessage {
    /// The message in the specification's form, which is what the wallet signs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(scheme) = &self.scheme {
            write!(f, "{scheme}://")?;
        }
        writeln!(f, "{}{HEADER}", self.domain)?;
        writeln!(f, "{}", self.address_text)?;
        writeln!(f)?;
        if let Some(statement) = &self.statement {
            writeln!(f, "{statement}")?;
        }
        writeln!(f)?;
        writeln!(f, "URI: {}", self.uri)?;
        writeln!(f, "Version: {}", self.version)?;
        writeln!(f, "Chain ID: {}", self.chain_id)?;
        writeln!(f, "Nonce: {}", self.nonce)?;
        write!(f, "Issued At: {}", self.issued_at.text)?;
        if let Some(expiration) = &self.expiration_time {
            write!(f, "\nExpiration Time: {}", expiration.text)?;
        }
        if let Some(not_before) = &self.not_before {
            write!(f, "\nNot Before: {}", not_before.text)?;
        }
        if let Some(request) = &self.request_id {
            write!(f, "\nRequest ID: {request}")?;
        }
        if !self.resources.is_empty() {
            write!(f, "\nResources:")?;
            for resource in &self.resources {
                write!(f, "\n- {resource}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The example of EIP-4361's own text, which every conforming parser reads.
    const SPEC_EXAMPLE: &str = "service.org wants you to sign in with your Ethereum account:
0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2

I accept the ServiceOrg Terms of Service: https://service.org/tos

URI: https://service.org/login
Version: 1
Chain ID: 1
Nonce: 32891756
Issued At: 2021-09-30T16:25:24Z
Resources:
- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/
- https://example.com/my-web2-claim.json";

    #[test]
    fn the_specifications_example_reads_and_renders_back_byte_for_byte() {
        let message = SiweMessage::parse(SPEC_EXAMPLE).unwrap();
        assert_eq!(message.domain, "service.org");
        assert_eq!(
            message.address,
            "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
                .parse()
                .unwrap()
        );
        assert_eq!(
            message.statement.as_deref(),
            Some("I accept the ServiceOrg Terms of Service: https://service.org/tos")
        );
        assert_eq!(message.chain_id, 1);
        assert_eq!(message.nonce, "32891756");
        assert_eq!(message.issued_at.ms, 1_633_019_124_000);
        assert_eq!(message.resources.len(), 2);
        assert_eq!(message.to_string(), SPEC_EXAMPLE);
    }

    #[test]
    fn a_message_without_a_statement_reads_with_one_blank_line_or_two() {
        let two = "example.com wants you to sign in with your Ethereum account:
0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2


URI: https://example.com
Version: 1
Chain ID: 10
Nonce: abcdefgh1
Issued At: 2026-12-04T14:37:19.250+01:00
Expiration Time: 2026-12-04T15:00:00Z
Not Before: 2026-12-04T13:00:00Z
Request ID: r-1";
        let parsed = SiweMessage::parse(two).unwrap();
        assert_eq!(parsed.statement, None);
        assert_eq!(
            parsed.issued_at.ms,
            Timestamp::parse("2026-12-04T13:37:19.250Z").unwrap().ms
        );
        assert_eq!(parsed.request_id.as_deref(), Some("r-1"));
        assert_eq!(
            parsed.to_string(),
            two,
            "a lower-case address is kept as written"
        );
        let one = two.replacen("\n\n\n", "\n\n", 1);
        assert_eq!(SiweMessage::parse(&one).unwrap().statement, None);
        let with_scheme = two.replacen("example.com wants", "https://example.com wants", 1);
        let parsed = SiweMessage::parse(&with_scheme).unwrap();
        assert_eq!(parsed.scheme.as_deref(), Some("https"));
        assert_eq!(parsed.to_string(), with_scheme);
    }

    #[test]
    fn each_malformed_line_is_named() {
        let cases = [
            (
                SPEC_EXAMPLE.replace(" wants you", " would like you"),
                1,
                "this is not a Sign-In",
            ),
            (
                SPEC_EXAMPLE.replace(
                    "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
                    "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756CC2",
                ),
                2,
                "checksum",
            ),
            (
                SPEC_EXAMPLE.replace("Chain ID: 1", "Chain ID: one"),
                8,
                "not a chain id",
            ),
            (
                SPEC_EXAMPLE.replace("Nonce: 32891756", "Nonce: 1234"),
                9,
                "at least 8",
            ),
            (
                SPEC_EXAMPLE.replace("Issued At: 2021-09-30T16:25:24Z", "Issued At: yesterday"),
                10,
                "RFC 3339",
            ),
            (
                SPEC_EXAMPLE.replace(
                    "Issued At: 2021-09-30T16:25:24Z",
                    "Issued At: 2021-02-30T16:25:24Z",
                ),
                10,
                "RFC 3339",
            ),
            (
                SPEC_EXAMPLE.replace("URI: ", "Uri: "),
                6,
                "expected \"URI: …\"",
            ),
            (format!("{SPEC_EXAMPLE}\nExtra: 1"), 14, "unexpected"),
            (SPEC_EXAMPLE.replace('\n', "\r\n"), 1, "carriage return"),
            ("x".repeat(MAX_MESSAGE_BYTES + 1), 1, "at most 4096"),
        ];
        for (text, line, what) in cases {
            let error = SiweMessage::parse(&text).unwrap_err();
            assert_eq!(error.line, line, "{error}");
            assert!(error.why.contains(what), "{error}");
        }
    }

    #[test]
    fn timestamps_render_and_read_back() {
        for ms in [
            0,
            1_000,
            1_633_019_124_000,
            1_764_859_039_250,
            4_102_444_800_000,
        ] {
            let written = Timestamp::from_ms(ms);
            assert_eq!(
                Timestamp::parse(&written.text).unwrap().ms,
                ms,
                "{}",
                written.text
            );
        }
        assert_eq!(
            Timestamp::from_ms(1_633_019_124_000).text,
            "2021-09-30T16:25:24Z"
        );
        assert_eq!(
            Timestamp::parse("2024-02-29T00:00:00Z").unwrap().ms,
            1_709_164_800_000
        );
        assert!(Timestamp::parse("2023-02-29T00:00:00Z").is_err());
        assert!(Timestamp::parse("1969-12-31T23:59:59Z").is_err());
    }

    fn arbitrary_message() -> impl Strategy<Value = SiweMessage> {
        (
            "[a-z]{1,12}\\.(org|example)(:[1-9][0-9]{0,3})?",
            any::<[u8; 20]>(),
            prop::option::of("[A-Za-z0-9 .,:/-]{1,60}"),
            any::<u32>(),
            "[a-zA-Z0-9]{8,32}",
            0u64..4_102_444_800_000,
            prop::option::of(0u64..4_102_444_800_000),
            prop::collection::vec("https://[a-z]{1,10}\\.example/[a-z0-9]{0,8}", 0..3),
            any::<bool>(),
        )
            .prop_map(
                |(domain, address, statement, chain, nonce, issued, expires, resources, lower)| {
                    let address = Address(address);
                    let statement =
                        statement.filter(|s| !s.trim().is_empty() && !s.starts_with("URI: "));
                    SiweMessage {
                        scheme: None,
                        uri: format!("https://{domain}/"),
                        domain,
                        address,
                        address_text: if lower {
                            format!("0x{}", caravan_core::hash::hex_lower(&address.0))
                        } else {
                            address.to_checksum()
                        },
                        statement,
                        version: "1".into(),
                        chain_id: u64::from(chain),
                        nonce,
                        issued_at: Timestamp::from_ms(issued),
                        expiration_time: expires.map(Timestamp::from_ms),
                        not_before: None,
                        request_id: None,
                        resources,
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, rng_seed: proptest::test_runner::RngSeed::Fixed(4361), ..ProptestConfig::default() })]

        #[test]
        fn every_rendered_message_reads_back_as_itself(message in arbitrary_message()) {
            let text = message.to_string();
            prop_assert_eq!(SiweMessage::parse(&text).unwrap(), message);
        }

        #[test]
        fn any_text_is_read_or_refused_without_a_panic(text in "\\PC{0,600}") {
            let _ = SiweMessage::parse(&text);
        }

        #[test]
        fn a_changed_line_of_a_valid_message_never_panics(message in arbitrary_message(), line in 0usize..12, junk in "\\PC{0,40}") {
            let text = message.to_string();
            let mut lines: Vec<&str> = text.split('\n').collect();
            let at = line % lines.len();
            lines[at] = &junk;
            let _ = SiweMessage::parse(&lines.join("\n"));
        }
    }
}
