//! The Chinese docs keep pace with the English ones. Every English page (README.md, docs/*.md)
//! has a Chinese page (README.zh-CN.md, docs/zh-CN/<same name>.md) with the same headings, level
//! by level and in the same order, and the same number of code blocks in each section. Each page
//! links its counterpart, every relative link between the pages resolves (anchors included, as
//! GitHub makes them from headings), and a Chinese page links the Chinese page of another
//! wherever there is one. A failure names the page and the section to bring in line.
//!
//! The rule is described in docs/development.md ("Docs in two languages").

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Component, Path, PathBuf};

/// The repository's root: this crate's parent directory.
fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.to_path_buf())
}

#[derive(Debug)]
struct Heading {
    level: usize,
    text: String,
    line: usize,
    slug: String,
}

#[derive(Debug)]
struct Link {
    target: String,
    line: usize,
}

/// One Markdown page: its headings, the code blocks of each section (section 0 is what comes
/// before the first heading, section `i` what follows heading `i - 1`), and its links.
#[derive(Debug)]
struct Page {
    /// Relative to the repository's root, with `/`.
    path: String,
    headings: Vec<Heading>,
    code_blocks: Vec<usize>,
    links: Vec<Link>,
}

impl Page {
    fn parse(path: &str, text: &str) -> Page {
        let mut headings = Vec::new();
        let mut code_blocks = vec![0];
        let mut links = Vec::new();
        let mut fence: Option<(char, usize)> = None;
        let mut slugs = Slugs::default();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let trimmed = line.trim_start();
            if let Some((fence_char, fence_len)) = fence {
                if fence_run(trimmed).is_some_and(|(c, len, rest)| {
                    c == fence_char && len >= fence_len && rest.trim().is_empty()
                }) {
                    fence = None;
                }
                continue;
            }
            if let Some((c, len, _)) = fence_run(trimmed) {
                fence = Some((c, len));
                if let Some(count) = code_blocks.last_mut() {
                    *count += 1;
                }
                continue;
            }
            if let Some((level, heading)) = heading(line) {
                headings.push(Heading {
                    level,
                    slug: slugs.next(&heading),
                    text: heading,
                    line: number,
                });
                code_blocks.push(0);
                continue;
            }
            for target in link_targets(line) {
                links.push(Link {
                    target,
                    line: number,
                });
            }
        }
        Page {
            path: path.to_string(),
            headings,
            code_blocks,
            links,
        }
    }

    fn slugs(&self) -> impl Iterator<Item = &str> {
        self.headings.iter().map(|h| h.slug.as_str())
    }

    /// The heading that opens section `index`, as the report names it.
    fn section_name(&self, index: usize) -> String {
        match index.checked_sub(1).and_then(|i| self.headings.get(i)) {
            Some(h) => format!("`{} {}` (line {})", "#".repeat(h.level), h.text, h.line),
            None => "the text before the first heading".to_string(),
        }
    }
}

/// A code fence opening or closing a block: its character, its length and what follows it.
fn fence_run(trimmed: &str) -> Option<(char, usize, &str)> {
    let c = trimmed.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = trimmed.chars().take_while(|x| *x == c).count();
    (len >= 3).then(|| (c, len, &trimmed[len..]))
}

/// An ATX heading (`## Text`): its level and its text without the closing `#`s.
fn heading(line: &str) -> Option<(usize, String)> {
    let level = line.chars().take_while(|c| *c == '#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &line[level..];
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t')) {
        return None;
    }
    let text = rest.trim().trim_end_matches('#').trim_end().to_string();
    Some((level, text))
}

/// The targets of the inline links `[text](target)` of a line, outside code spans.
fn link_targets(line: &str) -> Vec<String> {
    let mut outside_code = String::new();
    for (i, part) in line.split('`').enumerate() {
        if i % 2 == 0 {
            outside_code.push_str(part);
        }
    }
    let mut targets = Vec::new();
    let mut rest = outside_code.as_str();
    while let Some(start) = rest.find("](") {
        let after = &rest[start + 2..];
        let Some(end) = after.find(')') else { break };
        let target = after[..end].split_whitespace().next().unwrap_or("");
        targets.push(target.trim_matches(['<', '>']).to_string());
        rest = &after[end..];
    }
    targets
}

/// GitHub's anchors for a page's headings: the text as rendered, in lower case, without
/// punctuation, spaces as `-`; a repeated anchor gets `-1`, `-2`, ...
#[derive(Default)]
struct Slugs {
    seen: HashMap<String, usize>,
}

impl Slugs {
    fn next(&mut self, heading: &str) -> String {
        let base = slug(heading);
        let count = self.seen.entry(base.clone()).or_insert(0);
        let slug = if *count == 0 {
            base
        } else {
            format!("{base}-{count}")
        };
        *count += 1;
        slug
    }
}

fn slug(heading: &str) -> String {
    rendered_text(heading)
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// A heading's text as GitHub renders it: link texts without their targets, no code or
/// emphasis marks.
fn rendered_text(markdown: &str) -> String {
    let mut text = String::new();
    let mut rest = markdown;
    while let Some(start) = rest.find("](") {
        let Some(end) = rest[start..].find(')') else {
            break;
        };
        text.push_str(&rest[..start]);
        rest = &rest[start + end + 1..];
    }
    text.push_str(rest);
    text.chars()
        .filter(|c| !matches!(c, '`' | '*' | '['))
        .collect()
}

fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `target` relative to the directory of `page`, as a path from the repository's root.
fn resolve(page: &str, target: &str) -> String {
    let mut parts: Vec<&str> = page.split('/').collect();
    parts.pop();
    for component in Path::new(target).components() {
        match component {
            Component::ParentDir => {
                parts.pop();
            }
            Component::Normal(name) => parts.push(name.to_str().unwrap_or("")),
            _ => {}
        }
    }
    parts.join("/")
}

/// The structure of a Chinese page against its English page: the same heading levels in the
/// same order, then the same number of code blocks in each section.
fn compare_structure(english: &Page, chinese: &Page) -> Vec<String> {
    let pair = format!("{} ↔ {}", english.path, chinese.path);
    let levels = |p: &Page| p.headings.iter().map(|h| h.level).collect::<Vec<_>>();
    let (en_levels, zh_levels) = (levels(english), levels(chinese));
    if en_levels != zh_levels {
        let first = en_levels
            .iter()
            .zip(&zh_levels)
            .position(|(a, b)| a != b)
            .unwrap_or(en_levels.len().min(zh_levels.len()));
        let describe = |p: &Page| match p.headings.get(first) {
            Some(h) => format!("`{} {}` (line {})", "#".repeat(h.level), h.text, h.line),
            None => "no heading (the page ends)".to_string(),
        };
        return vec![format!(
            "{pair}: the headings differ from heading {} on: English {}, Chinese {}. \
             English has {} headings, Chinese {}: keep the same headings, level by level and \
             in the same order",
            first + 1,
            describe(english),
            describe(chinese),
            en_levels.len(),
            zh_levels.len(),
        )];
    }
    english
        .code_blocks
        .iter()
        .zip(&chinese.code_blocks)
        .enumerate()
        .filter(|(_, (en, zh))| en != zh)
        .map(|(section, (en, zh))| {
            format!(
                "{pair}: section {} (Chinese {}) has {en} code block(s) in English, {zh} in \
                 Chinese",
                english.section_name(section),
                chinese.section_name(section),
            )
        })
        .collect()
}

/// The pages and their counterparts.
struct Docs {
    root: PathBuf,
    pages: BTreeMap<String, Page>,
    /// English page → Chinese page (which may not exist).
    chinese_of: BTreeMap<String, String>,
}

impl Docs {
    fn load(root: &Path) -> Docs {
        let mut english = vec!["README.md".to_string()];
        english.extend(markdown_files(root, "docs"));
        let chinese_of: BTreeMap<String, String> = english
            .iter()
            .map(|page| {
                let zh = match page.strip_prefix("docs/") {
                    Some(name) => format!("docs/zh-CN/{name}"),
                    None => "README.zh-CN.md".to_string(),
                };
                (page.clone(), zh)
            })
            .collect();
        let mut paths = english;
        paths.push("README.zh-CN.md".to_string());
        paths.extend(markdown_files(root, "docs/zh-CN"));
        let pages = paths
            .into_iter()
            .filter_map(|path| {
                let text = fs::read_to_string(root.join(&path)).ok()?;
                Some((path.clone(), Page::parse(&path, &text)))
            })
            .collect();
        Docs {
            root: root.to_path_buf(),
            pages,
            chinese_of,
        }
    }

    fn english_of(&self, chinese: &str) -> Option<&str> {
        self.chinese_of
            .iter()
            .find(|(_, zh)| zh.as_str() == chinese)
            .map(|(en, _)| en.as_str())
    }

    fn is_chinese(&self, page: &str) -> bool {
        page == "README.zh-CN.md" || page.starts_with("docs/zh-CN/")
    }

    /// Every Chinese page exists, mirrors its English page, and no Chinese page is left without
    /// one.
    fn structure_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (english, chinese) in &self.chinese_of {
            let (Some(en), Some(zh)) = (self.pages.get(english), self.pages.get(chinese)) else {
                problems.push(format!(
                    "{english} has no Chinese page: translate it into {chinese}"
                ));
                continue;
            };
            problems.extend(compare_structure(en, zh));
        }
        for page in self.pages.keys().filter(|p| self.is_chinese(p)) {
            if self.english_of(page).is_none() {
                problems.push(format!(
                    "{page} has no English page (README.md or docs/<same name>.md)"
                ));
            }
        }
        problems
    }

    /// Each page links its counterpart; links resolve; Chinese pages link Chinese pages.
    fn link_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for page in self.pages.values() {
            let counterpart = if self.is_chinese(&page.path) {
                self.english_of(&page.path).map(str::to_string)
            } else {
                self.chinese_of.get(&page.path).cloned()
            };
            let mut links_counterpart = false;
            for link in &page.links {
                let target = link.target.as_str();
                if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (file, anchor) = match target.split_once('#') {
                    Some((file, anchor)) => (file, Some(percent_decoded(anchor))),
                    None => (target, None),
                };
                let resolved = if file.is_empty() {
                    page.path.clone()
                } else {
                    resolve(&page.path, &percent_decoded(file))
                };
                let at = format!("{}:{}", page.path, link.line);
                if counterpart.as_deref() == Some(resolved.as_str()) {
                    links_counterpart = true;
                } else if self.is_chinese(&page.path)
                    && let Some(zh) = self.chinese_of.get(&resolved)
                {
                    problems.push(format!(
                        "{at}: links the English page {resolved}; link its Chinese page {zh} \
                         instead"
                    ));
                }
                if !self.root.join(&resolved).exists() {
                    problems.push(format!("{at}: {target} does not exist"));
                    continue;
                }
                let (Some(anchor), Some(linked)) = (anchor, self.pages.get(&resolved)) else {
                    continue;
                };
                if !linked.slugs().any(|slug| slug == anchor) {
                    problems.push(format!(
                        "{at}: {resolved} has no heading with the anchor #{anchor}"
                    ));
                }
            }
            if let Some(counterpart) = counterpart
                && !links_counterpart
            {
                let word = if self.is_chinese(&page.path) {
                    "English"
                } else {
                    "中文"
                };
                problems.push(format!(
                    "{} does not link its counterpart {counterpart}: add [{word}](...) under \
                     its title",
                    page.path
                ));
            }
        }
        problems
    }
}

/// The `.md` files directly in `dir`, as paths from the root, in name order.
fn markdown_files(root: &Path, dir: &str) -> Vec<String> {
    let Ok(entries) = fs::read_dir(root.join(dir)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("{dir}/{name}"))
        .collect();
    names.sort();
    names
}

fn report(problems: &[String]) -> String {
    format!(
        "{} problem(s) in the docs (see \"Docs in two languages\" in docs/development.md):\n- {}",
        problems.len(),
        problems.join("\n- ")
    )
}

#[test]
fn every_english_page_has_a_chinese_page_with_the_same_sections_and_code_blocks() {
    let docs = Docs::load(&repo_root());
    assert!(
        docs.pages.contains_key("README.md") && docs.chinese_of.len() > 1,
        "README.md and docs/*.md were not found under {}",
        docs.root.display()
    );
    let problems = docs.structure_problems();
    assert!(problems.is_empty(), "{}", report(&problems));
}

#[test]
fn pages_link_their_counterparts_and_every_link_between_pages_resolves() {
    let docs = Docs::load(&repo_root());
    let problems = docs.link_problems();
    assert!(problems.is_empty(), "{}", report(&problems));
}

#[test]
fn anchors_are_made_as_github_makes_them() {
    let mut slugs = Slugs::default();
    assert_eq!(
        slugs.next("`server.caddy.transport`"),
        "servercaddytransport"
    );
    assert_eq!(
        slugs.next("TLS on ACI: TLS-ALPN-01 on 443"),
        "tls-on-aci-tls-alpn-01-on-443"
    );
    assert_eq!(
        slugs.next("Chat completions ⇄ Responses translation"),
        "chat-completions--responses-translation"
    );
    assert_eq!(
        slugs.next("ACI 上的 TLS：443 端口的 TLS-ALPN-01"),
        "aci-上的-tls443-端口的-tls-alpn-01"
    );
    assert_eq!(slugs.next("[Links](x.md) and *stress*"), "links-and-stress");
    assert_eq!(
        slugs.next("Statistics and stats.json"),
        "statistics-and-statsjson"
    );
    assert_eq!(
        slugs.next("Statistics and stats.json"),
        "statistics-and-statsjson-1"
    );
}

#[test]
fn a_heading_of_another_level_is_reported_with_both_headings() {
    let en = Page::parse("docs/a.md", "# A\n## One\n### Two\n");
    let zh = Page::parse("docs/zh-CN/a.md", "# 甲\n## 一\n## 二\n");
    let problems = compare_structure(&en, &zh);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("from heading 3 on"), "{}", problems[0]);
    assert!(
        problems[0].contains("`### Two` (line 3)"),
        "{}",
        problems[0]
    );
    assert!(problems[0].contains("`## 二` (line 3)"), "{}", problems[0]);
}

#[test]
fn a_missing_heading_is_reported_where_the_pages_part() {
    let en = Page::parse("README.md", "# A\n## One\n## Two\n");
    let zh = Page::parse("README.zh-CN.md", "# 甲\n## 一\n");
    let problems = compare_structure(&en, &zh);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("`## Two` (line 3)"), "{}", problems[0]);
    assert!(
        problems[0].contains("no heading (the page ends)"),
        "{}",
        problems[0]
    );
    assert!(
        problems[0].contains("English has 3 headings, Chinese 2"),
        "{}",
        problems[0]
    );
}

#[test]
fn a_section_with_another_number_of_code_blocks_is_named() {
    let en = "# A\n\n```sh\n# not a heading\n```\n\n## One\n\n~~~\nx\n~~~\n\n## Two\n";
    let zh = "# 甲\n\n```sh\n# 不是标题\n```\n\n## 一\n\n## 二\n\n  ```\n  y\n  ```\n";
    let problems = compare_structure(
        &Page::parse("docs/a.md", en),
        &Page::parse("docs/zh-CN/a.md", zh),
    );
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].contains("section `## One` (line 7)"),
        "{}",
        problems[0]
    );
    assert!(problems[0].contains("1 code block(s) in English, 0 in Chinese"));
    assert!(
        problems[1].contains("section `## Two` (line 13)"),
        "{}",
        problems[1]
    );
}

#[test]
fn links_inside_code_are_not_links() {
    let page = Page::parse(
        "docs/a.md",
        "See [b](b.md#x) and `[c](c.md)`.\n```\n[d](d.md)\n```\n",
    );
    let targets: Vec<&str> = page.links.iter().map(|l| l.target.as_str()).collect();
    assert_eq!(targets, ["b.md#x"]);
    assert_eq!(resolve("docs/zh-CN/a.md", "../b.md"), "docs/b.md");
    assert_eq!(resolve("README.md", "docs/zh-CN/b.md"), "docs/zh-CN/b.md");
    assert_eq!(percent_decoded("%E6%96%87%E4%BB%B6"), "文件");
}
