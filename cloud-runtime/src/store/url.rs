//! Where the store lives, as the operator names it (`--database-url`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

/// A store's location: a SQLite file, or a PostgreSQL database.
///
/// Its `Display` and `Debug` never show a password: the URL is printed in errors and logs.
#[derive(Clone)]
pub enum DatabaseUrl {
    /// `sqlite:PATH`: one file, the embedded default.
    Sqlite(PathBuf),
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=...]`.
    Postgres(PostgresUrl),
}

/// A parsed PostgreSQL URL, and the same URL with its password hidden.
#[derive(Clone)]
pub struct PostgresUrl {
    // Boxed: the options are large, and errors carry the URL.
    options: Box<PgConnectOptions>,
    shown: String,
}

impl PostgresUrl {
    /// The connection options sqlx connects with.
    pub(crate) fn options(&self) -> &PgConnectOptions {
        &self.options
    }

    /// The same server and user, another database.
    #[cfg(test)]
    pub(crate) fn with_database(&self, database: &str) -> Self {
        let base = self.shown.split(['?', '#']).next().unwrap_or_default();
        let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
        Self {
            options: Box::new((*self.options).clone().database(database)),
            shown: format!("{server}/{database}"),
        }
    }
}

/// Why a database URL was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatabaseUrlError {
    /// Neither `sqlite:` nor `postgres://`.
    #[error(
        "database URL {0:?} names no engine this runtime has: use sqlite:PATH or postgres://USER@HOST:PORT/DATABASE"
    )]
    UnknownScheme(String),
    /// `sqlite:` with no path.
    #[error("database URL sqlite: needs a file path (sqlite:/var/lib/cloud-runtime/runtime.db)")]
    EmptyPath,
    /// A PostgreSQL URL sqlx cannot read.
    #[error("database URL {shown}: {reason}")]
    Postgres {
        /// The URL, password hidden.
        shown: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// `url` with the password of its user part replaced by `***`.
fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{scheme}://{name}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl FromStr for DatabaseUrl {
    type Err = DatabaseUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            let shown = hide_password(s);
            // A password in a query parameter would escape `hide_password`: refuse it
            // rather than print it (use PGPASSWORD or the user part).
            if s.contains("password=") {
                return Err(DatabaseUrlError::Postgres {
                    shown: hide_password(s.split('?').next().unwrap_or_default()),
                    reason: "give the password in the user part (postgres://user:password@host/db) or in PGPASSWORD, not as a query parameter".into(),
                });
            }
            let options =
                PgConnectOptions::from_str(s).map_err(|e| DatabaseUrlError::Postgres {
                    shown: shown.clone(),
                    // sqlx's message may quote the URL: say only what kind of problem it is.
                    reason: kind_of(&e).into(),
                })?;
            return Ok(Self::Postgres(PostgresUrl {
                options: Box::new(options),
                shown,
            }));
        }
        if let Some(path) = s.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(DatabaseUrlError::EmptyPath);
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        Err(DatabaseUrlError::UnknownScheme(hide_password(s)))
    }
}

/// A short name for an sqlx error, without its text.
fn kind_of(e: &sqlx::Error) -> &'static str {
    match e {
        sqlx::Error::Configuration(_) => "it is not a valid PostgreSQL URL",
        sqlx::Error::Tls(_) => "its TLS settings are not usable",
        _ => "it cannot be used",
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Self::Postgres(pg) => f.write_str(&pg.shown),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_password_is_never_shown() {
        let url: DatabaseUrl = "postgres://rt:s3cret@db.internal:5433/runtime?sslmode=require"
            .parse()
            .unwrap();
        let shown = format!("{url} {url:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("postgres://rt:***@db.internal:5433/runtime?sslmode=require"));
        let e = "postgres://rt@db/runtime?password=s3cret"
            .parse::<DatabaseUrl>()
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn engines_are_named_by_scheme() {
        assert!(matches!(
            "sqlite:/var/lib/rt/runtime.db".parse::<DatabaseUrl>(),
            Ok(DatabaseUrl::Sqlite(p)) if p == Path::new("/var/lib/rt/runtime.db")
        ));
        assert!(matches!(
            "postgresql://rt@127.0.0.1/rt".parse::<DatabaseUrl>(),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert!(matches!(
            "sqlite:".parse::<DatabaseUrl>(),
            Err(DatabaseUrlError::EmptyPath)
        ));
        let e = "mysql://u:pw@h/db".parse::<DatabaseUrl>().unwrap_err();
        assert!(matches!(e, DatabaseUrlError::UnknownScheme(_)));
        assert!(!e.to_string().contains("pw@"), "{e}");
        assert!(matches!(
            "postgres://rt@db:notaport/rt".parse::<DatabaseUrl>(),
            Err(DatabaseUrlError::Postgres { .. })
        ));
    }
}
