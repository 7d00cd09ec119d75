//! A federation's subject pattern: `*` matches any run of characters
//! (none included), every other character only itself.

/// Longest pattern accepted.
pub const MAX_PATTERN_LEN: usize = 500;

/// Why a subject pattern is refused.
pub fn check(pattern: &str) -> Result<(), String> {
    if pattern.trim().is_empty() {
        return Err("the subject pattern may not be empty".into());
    }
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(format!(
            "the subject pattern may hold at most {MAX_PATTERN_LEN} characters"
        ));
    }
    if pattern.chars().all(|c| c == '*') {
        return Err(
            "a subject pattern of only `*` would trust every workload of the issuer; \
             name the repository or workload, e.g. repo:acme/app:*"
                .into(),
        );
    }
    if let Some(c) = pattern.chars().find(|c| c.is_control()) {
        return Err(format!(
            "the subject pattern may not contain control characters (found U+{:04X})",
            u32::from(c)
        ));
    }
    Ok(())
}

/// Whether `subject` matches `pattern`: greedy with backtracking to the last
/// `*` only, so at most (pattern × subject) steps, never exponential.
pub fn matches(pattern: &str, subject: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), subject.chars().collect());
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((star_p, star_s)) = star {
            pi = star_p + 1;
            si = star_s + 1;
            star = Some((star_p, star_s + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_star_matches_any_run_and_the_rest_is_exact() {
        let pattern = "repo:acme/app:*";
        assert!(matches(pattern, "repo:acme/app:ref:refs/heads/main"));
        assert!(matches(pattern, "repo:acme/app:"));
        assert!(!matches(pattern, "repo:acme/app2:ref:refs/heads/main"));
        assert!(!matches(pattern, "repo:acme/ap"));
        assert!(matches(
            "repo:acme/app:ref:refs/heads/main",
            "repo:acme/app:ref:refs/heads/main"
        ));
        assert!(!matches(
            "repo:acme/app:ref:refs/heads/main",
            "repo:acme/app:ref:refs/heads/mainx"
        ));
        assert!(matches(
            "repo:*/app:*:main",
            "repo:acme/app:ref:refs/heads:main"
        ));
        assert!(!matches(
            "repo:*/app:*:main",
            "repo:acme/app:ref:refs/heads:dev"
        ));
        assert!(matches("a*b*c", "aXXbYYbc"));
        assert!(!matches("a*b*c", "aXXbYYb"));
    }

    #[test]
    fn only_stars_and_empty_patterns_are_refused() {
        assert!(check("*").is_err());
        assert!(check("**").is_err());
        assert!(check("").is_err());
        assert!(check("  ").is_err());
        assert!(check("repo:a\nb").is_err());
        assert!(check("repo:acme/*").is_ok());
    }

    #[test]
    fn long_inputs_stay_cheap() {
        let pattern = "*a*a*a*a*a*a*a*a*b";
        let subject = "a".repeat(2000);
        assert!(!matches(pattern, &subject));
    }
}
