//! Logical queue names (`rss.fetch.requested`) → SQS queue names (`galley-rss-fetch-requested`).
//!
//! SQS queue names allow only ASCII letters, digits, `-` and `_`, at most 80 characters; the port's
//! names use dots. The mapping is the prefix plus the name with dots as dashes; the dead-letter queue
//! of a queue is its name plus `-dead`, which is also what the port's dead-letter name (`q.dead`)
//! maps to. A name that does not fit is refused with a message naming it rather than shortened, so
//! queue names stay predictable for infrastructure code that creates them.

/// SQS's longest queue name.
pub const MAX_QUEUE_NAME: usize = 80;
/// What a dead-letter queue's name adds to its work queue's.
pub const DEAD_SUFFIX: &str = "-dead";

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Checks a queue prefix only uses characters SQS accepts in a queue name.
pub fn validate_prefix(prefix: &str) -> Result<(), String> {
    if prefix.chars().all(allowed) && prefix.len() < MAX_QUEUE_NAME {
        Ok(())
    } else {
        Err(format!(
            "bus.sqs.queue_prefix {prefix:?} may only use ASCII letters, digits, '-' and '_' (SQS queue names)"
        ))
    }
}

/// Whether the logical `queue` is a dead-letter queue (see [`galley_messaging::dead_letter_queue`]).
pub fn is_dead_letter_queue(queue: &str) -> bool {
    queue.ends_with(".dead")
}

/// The SQS name of logical queue `queue` under `prefix`.
pub fn queue_name(prefix: &str, queue: &str) -> Result<String, String> {
    let name = format!("{prefix}{}", queue.replace('.', "-"));
    // Room for the dead-letter suffix, so a work queue never exists without its dead-letter queue.
    let longest =
        if is_dead_letter_queue(queue) { MAX_QUEUE_NAME } else { MAX_QUEUE_NAME - DEAD_SUFFIX.len() };
    if name.is_empty() || !name.chars().all(allowed) {
        Err(format!("queue {queue:?}: SQS queue names only allow ASCII letters, digits, '-' and '_'"))
    } else if name.len() > longest {
        Err(format!("queue {queue:?}: SQS name {name:?} is longer than {longest} characters"))
    } else {
        Ok(name)
    }
}

/// The dead-letter queue name of the SQS work queue `name`.
pub fn dead_letter_name(name: &str) -> String {
    format!("{name}{DEAD_SUFFIX}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use galley_messaging::dead_letter_queue;

    #[test]
    fn dots_become_dashes_after_the_prefix() {
        assert_eq!(queue_name("galley-", "rss.fetch.requested"), Ok("galley-rss-fetch-requested".into()));
        assert_eq!(
            queue_name("galley-", "rss.fetch.requested.v1"),
            Ok("galley-rss-fetch-requested-v1".into())
        );
    }

    #[test]
    fn the_port_dead_letter_name_maps_to_the_dead_suffix() {
        let work = queue_name("galley-", "rss.fetch.requested").expect("valid");
        let dead = queue_name("galley-", &dead_letter_queue("rss.fetch.requested")).expect("valid");
        assert_eq!(dead, dead_letter_name(&work));
        assert_eq!(dead, "galley-rss-fetch-requested-dead");
        assert!(is_dead_letter_queue(&dead_letter_queue("q")));
        assert!(!is_dead_letter_queue("q"));
    }

    #[test]
    fn names_sqs_refuses_are_refused_here() {
        assert!(queue_name("galley-", "rss/fetch").is_err());
        assert!(queue_name("galley-", &"q".repeat(80)).is_err());
        // A work queue leaves room for its dead-letter queue's suffix.
        assert!(queue_name("", &"q".repeat(76)).is_err());
        assert!(queue_name("", &"q".repeat(75)).is_ok());
        assert!(validate_prefix("galley.").is_err());
        assert!(validate_prefix("galley-").is_ok());
        assert!(validate_prefix("").is_ok());
    }
}
