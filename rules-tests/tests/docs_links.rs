//! Every relative link in every Markdown file of the repository resolves: the file exists,
//! and an `#anchor` exists in it.

use prism_rules_tests::docs::{broken_relative_links, heading_slug, link_targets};
use prism_rules_tests::repo_root;

#[test]
fn every_relative_link_in_the_repository_resolves() {
    let broken = broken_relative_links(&repo_root()).expect("read the Markdown files");
    assert!(
        broken.is_empty(),
        "relative links that do not resolve:\n  {}",
        broken.join("\n  ")
    );
}

#[test]
fn a_missing_file_or_anchor_is_reported_and_code_is_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("docs")).expect("docs dir");
    std::fs::write(
        dir.path().join("docs/GUIDE.md"),
        "# Guide\n\n<a id=\"setup\"></a>\n## First steps (5 minutes)\n",
    )
    .expect("write guide");
    std::fs::write(
        dir.path().join("README.md"),
        "See [the guide](docs/GUIDE.md), [setup](docs/GUIDE.md#setup),\n\
         [steps](docs/GUIDE.md#first-steps-5-minutes) and [the site](https://example.org/x).\n\
         Broken: [gone](docs/GONE.md), [no anchor](docs/GUIDE.md#nowhere), [here](#nothing).\n\
         [ref]: docs/ALSO-GONE.md\n\
         Not links: `[a](b.md)` and\n```\n[c](d.md)\n```\n",
    )
    .expect("write readme");
    let broken = broken_relative_links(dir.path()).expect("check links");
    assert_eq!(
        broken,
        [
            "README.md:3: docs/GONE.md (no such file)",
            "README.md:3: docs/GUIDE.md#nowhere (no anchor #nowhere)",
            "README.md:3: #nothing (no anchor #nothing)",
            "README.md:4: docs/ALSO-GONE.md (no such file)",
        ]
    );
}

#[test]
fn links_and_heading_anchors_are_read_as_github_does() {
    assert_eq!(
        link_targets("[a](x.md \"title\") ![img](i.png)"),
        [(1, "x.md".to_owned()), (1, "i.png".to_owned())]
    );
    assert_eq!(
        heading_slug(" PrismServerDown (critical, for 1m)"),
        "prismserverdown-critical-for-1m"
    );
}
