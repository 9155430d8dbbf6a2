//! What the server's tests share: throwaway PostgreSQL databases.

#![allow(dead_code)]

use std::future::Future;

/// `OPENWUA_TEST_POSTGRES_URL`, or a skip naming `test`.
pub fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("OPENWUA_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            openwua_testkit::skip(test, "OPENWUA_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// A fresh database on the test server, dropped when `body` ends (even by
/// a panic, which is then resumed).
pub async fn with_database<F, Fut>(admin_url: &str, body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let name = format!("openwua_test_{}", uuid::Uuid::new_v4().simple());
    let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .expect("connecting to OPENWUA_TEST_POSTGRES_URL");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("CREATE DATABASE");
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base)
        .expect("a URL with a database name");
    let url = format!("{base}/{name}");
    let outcome = tokio::spawn(body(url)).await;
    client
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .expect("DROP DATABASE");
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}
