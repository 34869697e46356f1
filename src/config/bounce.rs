//! `[bounce]`: how failures are classified. The built-in rules (`config/bounce_rules.toml`)
//! always apply; an operator's file adds rules tried before them, read again on reload.

use std::path::PathBuf;
use std::sync::Arc;

use hermod_actors::events::bounce_rules::{BounceRules, BounceRulesError};

use super::section::{Key, section};
use super::{ConfigIssue, Section};

section! {
    /// `[bounce]`: bounce classification.
    pub struct BounceConfig {
        /// A TOML file of `[[rule]]`s (the shape of config/bounce_rules.toml) tried before
        /// the built-in ones; empty: the built-in rules alone. Read again on reload.
        pub rules_file: PathBuf = PathBuf::new()
            => (live, []),
    }
}

impl Section for BounceConfig {
    const KEYS: &'static [Key] = BounceConfig::DECLARED;
    const NAME: &'static str = "bounce";

    fn check(&self, issues: &mut Vec<ConfigIssue>) {
        if let Err(e) = self.rules() {
            issues.push(ConfigIssue::new("bounce.rules_file", e));
        }
    }
}

impl BounceConfig {
    /// The rules in force: the operator's file, then the built-in rules.
    pub fn rules(&self) -> Result<Arc<BounceRules>, BounceRulesError> {
        let file = (!self.rules_file.as_os_str().is_empty()).then_some(self.rules_file.as_path());
        BounceRules::load(file).map(Arc::new)
    }
}
