//! Prompts and answers as Markdown: CommonMark with tables, strike-through and task lists (pulldown-cmark), then
//! sanitised (ammonia). Raw HTML in the source is shown as text, never interpreted; links get
//! `rel="noopener noreferrer nofollow"` and only safe URL schemes survive.

use std::sync::LazyLock;

use pulldown_cmark::{Event, Options, Parser};

/// The sanitiser, built once (every item fetch renders each prompt and answer).
static SANITISER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(sanitiser);

/// The sanitised HTML of Markdown `source`.
pub fn to_html(source: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    // Raw HTML (blocks and inline) becomes text: the annotator sees what the model wrote.
    let events = Parser::new_ext(source, options).map(|e| match e {
        Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
        other => other,
    });
    let mut html = String::with_capacity(source.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    SANITISER.clean(&html).to_string()
}

fn sanitiser() -> ammonia::Builder<'static> {
    let mut b = ammonia::Builder::default();
    b.link_rel(Some("noopener noreferrer nofollow"))
        .add_tags(["input"])
        .add_tag_attributes("input", ["type", "checked", "disabled"])
        .add_tag_attributes("code", ["class"])
        .url_schemes(["http", "https", "mailto"].into_iter().collect());
    b
}

#[cfg(test)]
mod tests {
    use super::to_html;

    #[test]
    fn lists_code_and_tables_render() {
        let html = to_html(
            "Steps:\n\n1. one\n2. two\n\n```rust\nfn main() {}\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        );
        assert!(html.contains("<ol>") && html.contains("<li>one</li>"), "{html}");
        assert!(html.contains("<pre><code class=\"language-rust\">fn main() {}"), "{html}");
        assert!(html.contains("<table>") && html.contains("<td>2</td>"), "{html}");
        assert_eq!(
            to_html("**bold** and `x < y`"),
            "<p><strong>bold</strong> and <code>x &lt; y</code></p>\n"
        );
    }

    #[test]
    fn raw_html_is_text_and_scripts_never_survive() {
        let html = to_html("<b>not bold</b> <script>alert(1)</script>\n\n<img src=x onerror=alert(1)>");
        assert!(html.contains("&lt;b&gt;not bold&lt;/b&gt;"), "{html}");
        assert!(!html.contains("<script") && !html.contains("<img") && !html.contains("<b>"), "{html}");
        let links = to_html("[a](javascript:alert(1)) [b](https://example.org) ![c](data:text/html,x)");
        assert!(!links.contains("javascript:") && !links.contains("data:"), "{links}");
        assert!(
            links.contains(r#"<a href="https://example.org" rel="noopener noreferrer nofollow">b</a>"#),
            "{links}"
        );
    }
}
