//! Topics and NATS subjects: the same dot-separated tokens and the same `*` and `>` wildcards,
//! so a topic travels as `<prefix>.<topic>` unchanged.

/// Checks one token (an agent type in a request subject): non-empty, no dot, no wildcard, no
/// whitespace.
pub fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("an empty name".into());
    }
    if let Some(c) = token
        .chars()
        .find(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>'))
    {
        return Err(format!(
            "{c:?} cannot travel in a NATS subject token: use letters, digits, '-' or '_'"
        ));
    }
    Ok(())
}

/// Checks a subject prefix: one or more tokens without wildcards.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    prefix.split('.').try_for_each(check_token)
}

/// Checks a topic pattern: tokens, `*` for one, a trailing `>` for the rest.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    let tokens: Vec<&str> = pattern.split('.').collect();
    for (i, t) in tokens.iter().enumerate() {
        match *t {
            "*" => {}
            ">" if i + 1 == tokens.len() => {}
            ">" => return Err("'>' only ends a pattern".into()),
            t => check_token(t)?,
        }
    }
    Ok(())
}

/// The NATS subject a topic (or topic pattern) travels on.
pub fn of_topic(prefix: &str, topic: &str) -> String {
    format!("{prefix}.{topic}")
}

/// The topic a subject carries, if it is under `prefix`.
pub fn topic_of<'a>(prefix: &str, subject: &'a str) -> Option<&'a str> {
    subject
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'))
        .filter(|t| !t.is_empty())
}

/// The subject requests to agent type `agent_type` travel on.
pub fn of_requests(prefix: &str, agent_type: &str) -> String {
    format!("{prefix}-rpc.type.{agent_type}")
}

/// The queue group serving bridges join, so that one of them answers each request.
pub const SERVE_GROUP: &str = "agentbus-serve";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_travel_under_the_prefix_unchanged() {
        assert_eq!(of_topic("agentbus", "market.AAPL"), "agentbus.market.AAPL");
        assert_eq!(
            topic_of("agentbus", "agentbus.market.AAPL"),
            Some("market.AAPL")
        );
        assert_eq!(topic_of("agentbus", "agentbusx.market"), None);
        assert_eq!(topic_of("agentbus", "agentbus."), None);
        assert_eq!(of_requests("p", "risk"), "p-rpc.type.risk");
    }

    #[test]
    fn patterns_and_tokens_are_checked() {
        assert!(check_pattern("market.*.bid").is_ok());
        assert!(check_pattern(">").is_ok());
        assert!(check_pattern("a.>.b").is_err());
        assert!(check_pattern("a..b").is_err());
        assert!(check_token("risk engine").is_err());
        assert!(check_prefix("site.a").is_ok());
        assert!(check_prefix("site.*").is_err());
    }
}
