//! kselftest-style TAP (version 13) for `conform --format tap`: the plan
//! first, then one test point per case as it finishes, so a killed run
//! still leaves a parseable prefix (and a parser sees the missing points).

use super::{ConformRow, Verdict};

pub fn header(cases: usize) -> String {
    format!("TAP version 13\n1..{cases}")
}

/// A machine that cannot run the matrix: an empty plan with the reason.
pub fn skip_all(reason: &str) -> String {
    format!("TAP version 13\n1..0 # SKIP {}", clean(reason))
}

/// One test point: ok for a match with the merged rule, not ok for a
/// mismatch or a failed setup, ok with SKIP where the kernel does not
/// support the policy.
pub fn point(number: usize, r: &ConformRow) -> String {
    let desc = clean(&format!(
        "case {} {} mask={} exec={} page={}: {} (merged rule: {}; first version: {}; {})",
        r.case,
        r.class,
        r.mask,
        r.exec_node,
        r.page_node,
        r.measured,
        r.expect_merged,
        r.expect_first_version,
        r.verdict
    ));
    match r.verdict {
        Verdict::Unsupported => format!("ok {number} {desc} # SKIP the kernel refuses this policy"),
        v if v.is_failure() => format!("not ok {number} {desc}"),
        _ => format!("ok {number} {desc}"),
    }
}

/// A test point of a check that is not a matrix case (the rate limit):
/// ok or not ok with its description, or a SKIP with the reason.
pub fn check(
    number: usize,
    name: &str,
    outcome: &Result<String, String>,
    skip: Option<&str>,
) -> String {
    match (skip, outcome) {
        (Some(why), _) => format!("ok {number} {} # SKIP {}", clean(name), clean(why)),
        (None, Ok(text)) => format!("ok {number} {}: {}", clean(name), clean(text)),
        (None, Err(text)) => format!("not ok {number} {}: {}", clean(name), clean(text)),
    }
}

/// Diagnostic lines.
pub fn comment(text: &str) -> String {
    text.lines()
        .map(|l| format!("# {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `#` starts a TAP directive and a newline ends a point: neither may
/// appear in a description.
fn clean(s: &str) -> String {
    s.replace('#', "no.").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(verdict: Verdict) -> ConformRow {
        ConformRow {
            case: 7,
            class: "nb=2 default page=lower1".into(),
            numa_balancing: 2,
            policy: "preferred-many|balancing".into(),
            mask: "0".into(),
            exec_node: 1,
            page_node: 2,
            expect_merged: "stay".into(),
            expect_first_version: "migrate->1".into(),
            measured: "stayed".into(),
            pages: 512,
            pages_on_exec: 0,
            pages_on_page_node: 512,
            numa_hint_faults: Some(512),
            numa_pages_migrated: Some(0),
            pgpromote_success: Some(0),
            verdict,
            notes: String::new(),
        }
    }

    #[test]
    fn points_follow_the_verdict() {
        assert!(point(1, &row(Verdict::MatchesMerged)).starts_with("ok 1 case 7 nb=2 "));
        assert!(point(2, &row(Verdict::MatchesFirstVersion)).starts_with("not ok 2 "));
        assert!(point(3, &row(Verdict::SetupFailed)).starts_with("not ok 3 "));
        assert!(point(4, &row(Verdict::Unsupported))
            .ends_with(" # SKIP the kernel refuses this policy"));
        assert_eq!(
            skip_all("needs #2 nodes"),
            "TAP version 13\n1..0 # SKIP needs no.2 nodes"
        );
        assert_eq!(header(60), "TAP version 13\n1..60");
        assert_eq!(
            check(61, "rate limit held", &Err("over".into()), None),
            "not ok 61 rate limit held: over"
        );
        assert_eq!(
            check(62, "lifted", &Ok("x".into()), Some("no tier")),
            "ok 62 lifted # SKIP no tier"
        );
    }
}
