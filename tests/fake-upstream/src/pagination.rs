//! Offset pagination as both APIs do it: `page` and `per_page` parameters, an RFC 8288
//! `Link` header with absolute URLs on the host the client used, and GitLab's `x-page`,
//! `x-total`... headers.

use axum::http::{HeaderMap, HeaderValue};

use crate::Kind;
use crate::query::Query;

/// Default and largest page sizes.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// `per_page` when absent (GitHub 30, GitLab 20).
    pub default: usize,
    /// Largest `per_page` honoured (both 100).
    pub max: usize,
}

/// GitHub's page sizes.
pub const GITHUB: Sizes = Sizes {
    default: 30,
    max: 100,
};
/// GitLab's page sizes.
pub const GITLAB: Sizes = Sizes {
    default: 20,
    max: 100,
};

/// One page cut from a full result.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// This page, from 1.
    pub page: usize,
    /// Page size.
    pub per_page: usize,
    /// Items over all pages.
    pub total: usize,
}

impl<T> Page<T> {
    /// Cuts the page the query asks for out of `all`.
    pub fn of(all: Vec<T>, query: &Query, sizes: Sizes) -> Page<T> {
        let per_page = query
            .get("per_page")
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(sizes.default)
            .min(sizes.max);
        let page = query
            .get("page")
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(1);
        let total = all.len();
        let items = all
            .into_iter()
            .skip((page - 1).saturating_mul(per_page))
            .take(per_page)
            .collect();
        Page {
            items,
            page,
            per_page,
            total,
        }
    }

    /// Number of pages (at least 1).
    pub fn last_page(&self) -> usize {
        self.total.div_ceil(self.per_page).max(1)
    }

    /// The pagination headers for this page of `url` (absolute, without query) requested
    /// with `query`.
    pub fn headers(&self, kind: Kind, url: &str, query: &Query) -> HeaderMap {
        let mut h = HeaderMap::new();
        let last = self.last_page();
        let link = |page: usize, rel: &str| {
            let mut q: Vec<(String, String)> = query
                .0
                .iter()
                .filter(|(k, _)| k != "page")
                .cloned()
                .collect();
            q.push(("page".into(), page.to_string()));
            if kind == Kind::Gitlab && query.get("per_page").is_none() {
                q.push(("per_page".into(), self.per_page.to_string()));
            }
            let qs = serde_urlencoded::to_string(&q).unwrap_or_default();
            format!("<{url}?{qs}>; rel=\"{rel}\"")
        };
        let mut rels = Vec::new();
        match kind {
            Kind::Github => {
                // GitHub omits prev/first on the first page and next/last on the last.
                if self.page > 1 {
                    rels.push(link((self.page - 1).min(last), "prev"));
                }
                if self.page < last {
                    rels.push(link(self.page + 1, "next"));
                    rels.push(link(last, "last"));
                }
                if self.page > 1 {
                    rels.push(link(1, "first"));
                }
            }
            Kind::Gitlab => {
                if self.page > 1 {
                    rels.push(link((self.page - 1).min(last), "prev"));
                }
                if self.page < last {
                    rels.push(link(self.page + 1, "next"));
                }
                rels.push(link(1, "first"));
                rels.push(link(last, "last"));
                let next = if self.page < last {
                    (self.page + 1).to_string()
                } else {
                    String::new()
                };
                let prev = if self.page > 1 {
                    (self.page - 1).to_string()
                } else {
                    String::new()
                };
                for (name, value) in [
                    ("x-page", self.page.to_string()),
                    ("x-per-page", self.per_page.to_string()),
                    ("x-next-page", next),
                    ("x-prev-page", prev),
                    ("x-total", self.total.to_string()),
                    ("x-total-pages", last.to_string()),
                ] {
                    if let Ok(v) = HeaderValue::from_str(&value) {
                        h.insert(name, v);
                    }
                }
            }
        }
        if !rels.is_empty()
            && let Ok(v) = HeaderValue::from_str(&rels.join(", "))
        {
            h.insert("link", v);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_links_on_a_middle_page() {
        let q = Query::parse(Some("state=open&page=2&per_page=10"));
        let p = Page::of((0..35).collect::<Vec<_>>(), &q, GITHUB);
        assert_eq!(p.items, (10..20).collect::<Vec<_>>());
        let h = p.headers(Kind::Github, "http://h/api/v3/x", &q);
        let link = h["link"].to_str().unwrap();
        assert_eq!(
            link,
            "<http://h/api/v3/x?state=open&per_page=10&page=1>; rel=\"prev\", \
             <http://h/api/v3/x?state=open&per_page=10&page=3>; rel=\"next\", \
             <http://h/api/v3/x?state=open&per_page=10&page=4>; rel=\"last\", \
             <http://h/api/v3/x?state=open&per_page=10&page=1>; rel=\"first\""
        );
    }

    #[test]
    fn github_single_page_has_no_link_and_per_page_is_capped() {
        let q = Query::parse(Some("per_page=500"));
        let p = Page::of((0..150).collect::<Vec<_>>(), &q, GITHUB);
        assert_eq!(p.per_page, 100);
        let one = Page::of(vec![1], &Query::default(), GITHUB);
        assert!(
            one.headers(Kind::Github, "http://h/x", &Query::default())
                .get("link")
                .is_none()
        );
    }

    #[test]
    fn gitlab_headers() {
        let q = Query::parse(Some("page=1"));
        let p = Page::of((0..45).collect::<Vec<_>>(), &q, GITLAB);
        let h = p.headers(Kind::Gitlab, "http://h/api/v4/x", &q);
        assert_eq!(h["x-total"], "45");
        assert_eq!(h["x-total-pages"], "3");
        assert_eq!(h["x-next-page"], "2");
        assert_eq!(h["x-prev-page"], "");
        assert!(
            h["link"]
                .to_str()
                .unwrap()
                .contains("page=3&per_page=20>; rel=\"last\"")
                || h["link"]
                    .to_str()
                    .unwrap()
                    .contains("per_page=20&page=3>; rel=\"last\"")
        );
    }
}
