//! Relative links of the repository's Markdown files: every `[text](path)` and
//! `[text](path#anchor)` must name an existing file, and an anchor must exist in its target.

use std::path::{Path, PathBuf};

/// Directories never searched for Markdown: build output, VCS data, runtime state.
const SKIPPED_DIRS: &[&str] = &["target", ".git", ".monitoring", "node_modules"];

/// Every `*.md` file under `root`, sorted, skipping [`SKIPPED_DIRS`].
pub fn markdown_files(root: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !SKIPPED_DIRS.contains(&name.as_str()) {
                    pending.push(path);
                }
            } else if name.ends_with(".md") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The link targets of a Markdown text (`[text](target)`, `![alt](target)`, reference
/// definitions `[name]: target`), outside code blocks and code spans, with their line numbers.
pub fn link_targets(markdown: &str) -> Vec<(usize, String)> {
    let mut links = Vec::new();
    let mut in_fence = false;
    for (number, line) in markdown.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        if let Some(rest) = line.trim_start().strip_prefix('[')
            && let Some((_, target)) = rest.split_once("]:")
        {
            links.push((number + 1, target.trim().to_owned()));
            continue;
        }
        let mut in_code = false;
        let chars: Vec<char> = line.chars().collect();
        let mut index = 0;
        while index < chars.len() {
            match chars[index] {
                '`' => in_code = !in_code,
                ']' if !in_code && chars.get(index + 1) == Some(&'(') => {
                    let start = index + 2;
                    if let Some(length) = chars[start..].iter().position(|c| *c == ')') {
                        let target: String = chars[start..start + length].iter().collect();
                        let target = target.split_whitespace().next().unwrap_or_default();
                        links.push((number + 1, target.to_owned()));
                        index = start + length;
                    }
                }
                _ => {}
            }
            index += 1;
        }
    }
    links
}

/// The anchors a Markdown file offers: explicit `<a id="…">` / `<a name="…">` and the
/// GitHub slug of every heading.
pub fn anchors(markdown: &str) -> Vec<String> {
    let mut anchors = Vec::new();
    for attribute in ["<a id=\"", "<a name=\""] {
        for chunk in markdown.split(attribute).skip(1) {
            if let Some((anchor, _)) = chunk.split_once('"') {
                anchors.push(anchor.to_owned());
            }
        }
    }
    let mut in_fence = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence && line.starts_with('#') {
            anchors.push(heading_slug(line.trim_start_matches('#')));
        }
    }
    anchors
}

/// GitHub's anchor for a heading: lowercase, punctuation dropped, spaces become hyphens.
pub fn heading_slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn is_external(target: &str) -> bool {
    target.contains("://") || target.starts_with("mailto:")
}

/// Every relative link of the Markdown files under `root` that does not resolve, as
/// `file:line: target (why)`.
pub fn broken_relative_links(root: &Path) -> Result<Vec<String>, String> {
    let mut broken = Vec::new();
    for file in markdown_files(root)? {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("reading {}: {e}", file.display()))?;
        let shown = file
            .strip_prefix(root)
            .unwrap_or(&file)
            .display()
            .to_string();
        for (line, target) in link_targets(&text) {
            if is_external(&target) || target.is_empty() {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap_or(root).join(path)
            };
            if !resolved.exists() {
                broken.push(format!("{shown}:{line}: {target} (no such file)"));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if resolved.extension().is_some_and(|ext| ext == "md") {
                let target_text = std::fs::read_to_string(&resolved)
                    .map_err(|e| format!("reading {}: {e}", resolved.display()))?;
                if !anchors(&target_text).iter().any(|a| a == anchor) {
                    broken.push(format!("{shown}:{line}: {target} (no anchor #{anchor})"));
                }
            }
        }
    }
    Ok(broken)
}
