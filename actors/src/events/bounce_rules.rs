//! Which class a failure gets: the rules of `config/bounce_rules.toml` (built in) after
//! the operator's own file, tried in order, each matching a reply by its enhanced status
//! code, by regular expressions on its text, or by both. Pure: the Queue asks it for each
//! failed or deferred recipient, the intake for each returned DSN, and
//! `hermod bounce classify` for a reply an operator types.

use std::path::Path;
use std::sync::{Arc, RwLock};

use regex::RegexSet;
use serde::Deserialize;

use crate::core::bounce_class::BounceClass;
use crate::protocol::status::EnhancedCode;

/// The rules built into hermod, in the shipped file's words.
pub const SHIPPED_RULES: &str = include_str!("../../../config/bounce_rules.toml");

/// Why a rules file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BounceRulesError {
    /// The file cannot be read.
    #[error("cannot read bounce rules {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What reading said.
        source: std::io::Error,
    },
    /// The file is not TOML of the rules' shape.
    #[error("bounce rules {origin}: {source}")]
    Parse {
        /// The file (or "built-in").
        origin: String,
        /// What the TOML reader said.
        source: toml::de::Error,
    },
    /// One rule is wrong: a bad class, code pattern or regular expression, or nothing to
    /// match.
    #[error("bounce rules {origin}, rule {rule:?}: {problem}")]
    Rule {
        /// The file (or "built-in").
        origin: String,
        /// The rule's name (or its place).
        rule: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// One `[[rule]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    name: Option<String>,
    provider: Option<String>,
    class: String,
    #[serde(default)]
    codes: Vec<String>,
    #[serde(default)]
    text: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<RuleEntry>,
}

/// One part of a code pattern: a number, or `*` for any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Any,
    Is(u16),
}

/// An enhanced code with `*` for any part (`5.1.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CodePattern([Part; 3]);

impl CodePattern {
    fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('.').map(|p| match p {
            "*" => Some(Part::Any),
            n if (1..=3).contains(&n.len()) => n.parse().ok().map(Part::Is),
            _ => None,
        });
        let pattern = [parts.next()??, parts.next()??, parts.next()??];
        parts.next().is_none().then_some(CodePattern(pattern))
    }

    fn matches(self, code: EnhancedCode) -> bool {
        let numbers = [u16::from(code.class), code.subject, code.detail];
        self.0
            .iter()
            .zip(numbers)
            .all(|(part, n)| matches!(part, Part::Any) || *part == Part::Is(n))
    }
}

/// One rule, ready to match.
#[derive(Debug, Clone)]
struct Rule {
    name: String,
    class: BounceClass,
    codes: Vec<CodePattern>,
    text: Option<RegexSet>,
}

impl Rule {
    fn matches(&self, code: EnhancedCode, text: &str) -> bool {
        (self.codes.is_empty() || self.codes.iter().any(|p| p.matches(code)))
            && self.text.as_ref().is_none_or(|set| set.is_match(text))
    }
}

/// The class a reply got, and the rule that gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// The class.
    pub class: BounceClass,
    /// The rule's name, or `default-temporary` / `default-permanent` when none matched.
    pub rule: String,
}

/// The rules in force: the operator's, then the built-in ones.
#[derive(Debug, Clone)]
pub struct BounceRules {
    rules: Vec<Rule>,
}

/// Replies longer than this are classified on their first part: a next hop's text is
/// hostile, and no rule needs more.
const MAX_TEXT: usize = 4096;

impl BounceRules {
    /// The built-in rules alone.
    pub fn shipped() -> Self {
        let rules = parse(SHIPPED_RULES, "built-in").expect("the built-in bounce rules parse");
        BounceRules { rules }
    }

    /// The operator's rules from `path`, tried before the built-in ones; `None`: the
    /// built-in ones alone.
    pub fn load(path: Option<&Path>) -> Result<Self, BounceRulesError> {
        let mut rules = Vec::new();
        if let Some(path) = path {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| BounceRulesError::Read {
                path: origin.clone(),
                source,
            })?;
            rules = parse(&text, &origin)?;
        }
        rules.extend(Self::shipped().rules);
        Ok(BounceRules { rules })
    }

    /// The class of a failure with enhanced `code` and reply `text`.
    pub fn classify(&self, code: EnhancedCode, text: &str) -> Classified {
        let text = bounded(text);
        if let Some(rule) = self.rules.iter().find(|r| r.matches(code, text)) {
            return Classified {
                class: rule.class,
                rule: rule.name.clone(),
            };
        }
        if code.class == 4 {
            Classified {
                class: BounceClass::TransientFailure,
                rule: "default-temporary".into(),
            }
        } else {
            Classified {
                class: BounceClass::Uncategorized,
                rule: "default-permanent".into(),
            }
        }
    }

    /// The class of a reply as an operator types it (`550 5.1.1 user unknown`): its
    /// enhanced code is read as the Delivery actor reads a next hop's.
    pub fn classify_reply(&self, reply: &str) -> Classified {
        let reply = reply.trim();
        // `550 text` or the first line of a multi-line reply, `550-text`.
        let (code, rest) = match reply.get(..4) {
            Some(head) if head.ends_with([' ', '-']) => (&head[..3], &reply[4..]),
            _ => (reply, ""),
        };
        let code = match code.parse::<u16>() {
            Ok(n) if (200..600).contains(&n) => EnhancedCode::of_reply(n, rest),
            // No reply code: the text may start with an enhanced code of its own.
            _ => reply
                .split_whitespace()
                .next()
                .and_then(|w| w.parse().ok())
                .unwrap_or(EnhancedCode::new(5, 0, 0)),
        };
        self.classify(code, reply)
    }

    /// How many rules are in force.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Never: the built-in rules are always there.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// The rules in force, shared by those who classify and replaced on reload (SIGHUP).
#[derive(Debug, Clone, Default)]
pub struct SharedBounceRules(Arc<RwLock<Arc<BounceRules>>>);

impl SharedBounceRules {
    /// A handle to `rules`.
    pub fn new(rules: Arc<BounceRules>) -> Self {
        SharedBounceRules(Arc::new(RwLock::new(rules)))
    }

    /// The rules in force now.
    pub fn current(&self) -> Arc<BounceRules> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts `rules` in force for every holder.
    pub fn replace(&self, rules: Arc<BounceRules>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = rules;
    }
}

impl Default for BounceRules {
    fn default() -> Self {
        Self::shipped()
    }
}

fn bounded(text: &str) -> &str {
    if text.len() <= MAX_TEXT {
        return text;
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn parse(text: &str, origin: &str) -> Result<Vec<Rule>, BounceRulesError> {
    let file: RulesFile = toml::from_str(text).map_err(|source| BounceRulesError::Parse {
        origin: origin.to_string(),
        source,
    })?;
    file.rule
        .into_iter()
        .enumerate()
        .map(|(i, entry)| rule(entry, i, origin))
        .collect()
}

fn rule(entry: RuleEntry, place: usize, origin: &str) -> Result<Rule, BounceRulesError> {
    let name = entry.name.unwrap_or_else(|| format!("#{}", place + 1));
    let _ = entry.provider;
    let bad = |problem: String| BounceRulesError::Rule {
        origin: origin.to_string(),
        rule: name.clone(),
        problem,
    };
    let class = entry
        .class
        .parse::<BounceClass>()
        .map_err(|e| bad(e.to_string()))?;
    let codes = entry
        .codes
        .iter()
        .map(|c| {
            CodePattern::parse(c).ok_or_else(|| {
                bad(format!(
                    "code {c:?} is not class.subject.detail with numbers or *"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if codes.is_empty() && entry.text.is_empty() {
        return Err(bad("a rule needs codes, text or both".into()));
    }
    let text = if entry.text.is_empty() {
        None
    } else {
        Some(RegexSet::new(&entry.text).map_err(|e| bad(format!("text: {e}")))?)
    };
    Ok(Rule {
        name,
        class,
        codes,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(reply: &str) -> BounceClass {
        BounceRules::shipped().classify_reply(reply).class
    }

    /// Replies as providers send them, and the class each gets.
    const PROVIDER_REPLIES: &[(&str, BounceClass)] = &[
        (
            "550 5.1.1 <a@example.com>: Recipient address rejected: User unknown",
            BounceClass::InvalidRecipient,
        ),
        (
            "550-5.1.1 The email account that you tried to reach does not exist.",
            BounceClass::InvalidRecipient,
        ),
        (
            "554 delivery error: dd This user doesn't have a yahoo.com account",
            BounceClass::InvalidRecipient,
        ),
        (
            "421-4.7.28 Our system has detected an unusual rate of unsolicited mail originating from your IP address.",
            BounceClass::SpamBlock,
        ),
        (
            "550-5.7.1 Our system has detected that this message is likely unsolicited mail.",
            BounceClass::SpamContent,
        ),
        (
            "550-5.7.26 Unauthenticated email from example.com is not accepted",
            BounceClass::AuthFailure,
        ),
        (
            "451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation.",
            BounceClass::SpamBlock,
        ),
        (
            "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. (S3150)",
            BounceClass::SpamBlock,
        ),
        (
            "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints",
            BounceClass::SpamBlock,
        ),
        (
            "452 4.2.2 The email account that you tried to reach is over quota.",
            BounceClass::QuotaIssues,
        ),
        ("552 5.2.2 Mailbox full", BounceClass::QuotaIssues),
        (
            "550 5.2.1 The email account that you tried to reach is disabled.",
            BounceClass::InactiveMailbox,
        ),
        (
            "552 5.3.4 Message size exceeds fixed limit",
            BounceClass::MessageTooLarge,
        ),
        ("554 5.7.1 Relay access denied", BounceClass::PolicyRelated),
        (
            "554 5.7.1 Service unavailable; client host blocked using zen.spamhaus.org",
            BounceClass::SpamBlock,
        ),
        (
            "5.4.7 message expired in queue; last reply: 4.4.1 connect refused",
            BounceClass::MessageExpired,
        ),
        (
            "4.4.1 connect to 192.0.2.1:25: refused",
            BounceClass::NoAnswerFromHost,
        ),
        (
            "5.1.2 no such domain: example.invalid",
            BounceClass::BadDomain,
        ),
        ("500 5.5.2 Syntax error", BounceClass::ProtocolErrors),
        (
            "450 4.7.1 greylisted, try again later",
            BounceClass::TransientFailure,
        ),
        ("554 Transaction failed", BounceClass::Uncategorized),
        (
            "554 5.6.0 Virus found in attachment",
            BounceClass::SpamContent,
        ),
    ];

    #[test]
    fn the_built_in_rules_class_what_providers_say() {
        for &(reply, expected) in PROVIDER_REPLIES {
            assert_eq!(class(reply), expected, "{reply}");
        }
    }

    #[test]
    fn a_temporary_unknown_user_is_not_an_invalid_recipient() {
        assert_eq!(
            class("450 4.1.1 user unknown, try later"),
            BounceClass::TransientFailure
        );
    }

    #[test]
    fn the_operators_rules_come_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.toml");
        std::fs::write(
            &path,
            "[[rule]]\nname = \"acme-full\"\nclass = \"QuotaIssues\"\ntext = ['(?i)acme: no room']\n",
        )
        .unwrap();
        let rules = BounceRules::load(Some(&path)).unwrap();
        let got = rules.classify_reply("550 5.1.1 acme: no room for this user");
        assert_eq!(
            (got.class, got.rule.as_str()),
            (BounceClass::QuotaIssues, "acme-full")
        );
        assert_eq!(rules.len(), BounceRules::shipped().len() + 1);
    }

    #[test]
    fn bad_rules_name_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "[[rule]]\nclass = \"Spam\"\ntext = ['x']\n",
                "unknown bounce class",
            ),
            (
                "[[rule]]\nclass = \"SpamBlock\"\ncodes = ['5.x.1']\n",
                "is not class.subject.detail",
            ),
            ("[[rule]]\nclass = \"SpamBlock\"\ntext = ['(']\n", "text:"),
            (
                "[[rule]]\nclass = \"SpamBlock\"\n",
                "needs codes, text or both",
            ),
            (
                "[[rule]]\nclass = \"SpamBlock\"\ntext = ['x']\ncolour = 1\n",
                "unknown field",
            ),
        ];
        for (text, expected) in cases {
            let path = dir.path().join("r.toml");
            std::fs::write(&path, text).unwrap();
            let e = BounceRules::load(Some(&path)).unwrap_err().to_string();
            assert!(e.contains(expected), "{text}: {e}");
        }
        let missing = BounceRules::load(Some(Path::new("/nonexistent/rules.toml")));
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .contains("cannot read bounce rules")
        );
    }

    #[test]
    fn a_huge_reply_is_classified_on_its_start() {
        let reply = format!("550 5.1.1 {}", "é".repeat(100_000));
        assert_eq!(class(&reply), BounceClass::InvalidRecipient);
    }
}
