//! `portcullis bench console`: the admin console's user pages in a tenant of many users. A
//! server process gets its users over the admin API, a tenant administrator signs in through
//! the sign-in page, and each console page is then asked for one request at a time, so each
//! figure is the page's own time (server work plus a loopback round trip), not queueing.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use portcullis_api::users::{CreateUser, SetPassword};

use super::{BENCH_PASSWORD, Phase, ServerProcess, create_users, load};

#[derive(clap::Args)]
pub struct ConsoleBench {
    #[command(flatten)]
    pub backend: super::Backend,
    /// Users in the tenant, created over the admin API before measuring.
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Requests per kind of page.
    #[arg(long, default_value_t = 1_000)]
    requests: usize,
    /// Records of one resource type, each owned by one of the users, registered over the admin
    /// API before measuring the records pages.
    #[arg(long, default_value_t = 20_000)]
    records: usize,
    /// Concurrent connections while creating the users and records.
    #[arg(long, default_value_t = 32)]
    connections: usize,
}

/// A browser signed in to the console: its cookies, sent with every request.
struct SignedIn {
    http: reqwest::Client,
    base: String,
    cookies: String,
}

impl SignedIn {
    async fn page(&self, path: &str) -> anyhow::Result<(Duration, String)> {
        let sent = Instant::now();
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookies)
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        let took = sent.elapsed();
        if status != reqwest::StatusCode::OK {
            bail!("{path} answered {status}: {body}");
        }
        Ok((took, body))
    }

    /// `requests` requests for the paths `path(i)` makes, one at a time; each answer must
    /// contain `expect(i)`.
    async fn measure(
        &self,
        name: &str,
        store_name: &str,
        requests: usize,
        path: impl Fn(usize) -> String,
        expect: impl Fn(usize) -> String,
    ) -> anyhow::Result<()> {
        // Warm the connection and the statement caches first.
        for i in 0..requests.min(20) {
            self.page(&path(i)).await?;
        }
        let started = Instant::now();
        let mut latencies = Vec::with_capacity(requests);
        for i in 0..requests {
            let (took, body) = self.page(&path(i)).await?;
            let expected = expect(i);
            if !body.contains(&expected) {
                bail!("{name}: {} does not show {expected:?}", path(i));
            }
            latencies.push(took);
        }
        Phase {
            latencies,
            elapsed: started.elapsed(),
        }
        .report(name, store_name);
        Ok(())
    }
}

fn user_name(i: usize) -> String {
    format!("user-{i:06}")
}

pub async fn console(
    bench: &ConsoleBench,
    dir: &Path,
    database_url: &str,
    store_name: &str,
) -> anyhow::Result<()> {
    if bench.users < 1_000 || bench.records < 100 || bench.requests == 0 || bench.connections == 0 {
        bail!(
            "--users must be at least 1000, --records at least 100 (two pages and more), --requests and --connections at least 1"
        );
    }
    let server = ServerProcess::start(dir, database_url).await?;
    let admin = reqwest::Client::builder()
        .pool_max_idle_per_host(bench.connections)
        .build()?;
    eprintln!("creating {} users over the admin API", bench.users);
    let ids = create_users(
        &admin,
        &server,
        bench.users,
        bench.connections,
        store_name,
        |i| CreateUser {
            user_name: user_name(i),
            email: Some(format!("{}@example.com", user_name(i))),
            display_name: Some(format!("Person {i}")),
            ..CreateUser::default()
        },
    )
    .await?;

    let browser = sign_in_administrator(&server).await?;
    let users = bench.users;
    let n = bench.requests;
    // Spread over the tenant, repeatably: a stride that is prime to the number of users.
    let pick = move |i: usize| (i * 7919 + 13) % users;

    browser
        .measure(
            "first page",
            store_name,
            n,
            |_| "/t/operator/console/users".into(),
            |_| "rel=\"next\"".into(),
        )
        .await?;
    let pages = walk(&browser, n).await?;
    browser
        .measure(
            "next page",
            store_name,
            n,
            |i| pages[i % pages.len()].clone(),
            |_| "</tbody>".into(),
        )
        .await?;
    browser
        .measure(
            "search 1",
            store_name,
            n,
            |i| format!("/t/operator/console/users?q={}", user_name(pick(i))),
            |i| format!(">{}</a>", user_name(pick(i))),
        )
        .await?;
    browser
        .measure(
            "search 1000",
            store_name,
            n,
            |i| format!("/t/operator/console/users?q=user-{:03}", pick(i) / 1000),
            |i| format!(">user-{:03}", pick(i) / 1000),
        )
        .await?;
    browser
        .measure(
            "search e-mail",
            store_name,
            n,
            |i| format!("/t/operator/console/users?q={}%40", user_name(pick(i))),
            |i| format!("{}@example.com", user_name(pick(i))),
        )
        .await?;
    browser
        .measure(
            "search none",
            store_name,
            n,
            |i| format!("/t/operator/console/users?q=nobody-{i}"),
            |_| "No users match.".into(),
        )
        .await?;
    browser
        .measure(
            "filter none",
            store_name,
            n,
            |_| "/t/operator/console/users?state=disabled".into(),
            |_| "No users match.".into(),
        )
        .await?;
    let detail_ids = ids.clone();
    browser
        .measure(
            "user page",
            store_name,
            n,
            move |i| {
                format!(
                    "/t/operator/console/users/{}",
                    detail_ids[pick(i) % detail_ids.len()]
                )
            },
            |_| "Lifecycle".into(),
        )
        .await?;
    records(bench, &server, &admin, &browser, &ids, store_name).await?;
    println!(
        "memory        {store_name:<10} after {} users and {} records: {:.1} MiB resident",
        bench.users,
        bench.records,
        server.rss_mib()?
    );
    Ok(())
}

fn record_id(i: usize) -> String {
    format!("doc-{i:06}")
}

/// Registers `--records` documents, each owned by a user spread over the tenant, then measures
/// the records list, a search for one record by the start of its id, and a record's page.
async fn records(
    bench: &ConsoleBench,
    server: &ServerProcess,
    admin: &reqwest::Client,
    browser: &SignedIn,
    owners: &[String],
    store_name: &str,
) -> anyhow::Result<()> {
    let base = server.base.clone();
    let key = server.admin_key.clone();
    admin
        .post(format!("{base}/v1/resource-types"))
        .bearer_auth(&key)
        .json(&json!({"name": "document", "actions": [{"name": "read", "plane": "data"}]}))
        .send()
        .await?
        .error_for_status()?;
    let units: serde_json::Value = admin
        .get(format!("{base}/v1/business-units"))
        .bearer_auth(&key)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let unit = units["items"][0]["id"]
        .as_str()
        .context("no business unit")?
        .to_owned();
    let count = bench.records;
    eprintln!("registering {count} records over the admin API");
    let owners: Vec<String> = owners.to_vec();
    let (registered, _) = load(admin, count, bench.connections, 200, move |http, i| {
        http.put(format!("{base}/v1/records/document/{}", record_id(i)))
            .bearer_auth(&key)
            .json(&json!({
                "owner": {"kind": "user", "id": owners[(i * 7919 + 13) % owners.len()]},
                "business_unit_id": unit,
            }))
    })
    .await?;
    registered.report("register record", store_name);

    let n = bench.requests;
    let pick = move |i: usize| (i * 7919 + 13) % count;
    browser
        .measure(
            "records page",
            store_name,
            n,
            |_| "/t/operator/console/records/document".into(),
            |_| "rel=\"next\"".into(),
        )
        .await?;
    browser
        .measure(
            "records search",
            store_name,
            n,
            |i| {
                format!(
                    "/t/operator/console/records/document?q={}",
                    record_id(pick(i))
                )
            },
            |i| format!(">{}</a>", record_id(pick(i))),
        )
        .await?;
    browser
        .measure(
            "record page",
            store_name,
            n,
            |i| {
                format!(
                    "/t/operator/console/records/document/{}",
                    record_id(pick(i))
                )
            },
            |_| "Shared with".into(),
        )
        .await?;
    Ok(())
}

/// Follows the list's "Next page" links from the first page, `pages` times (or to the end),
/// and returns the pages visited.
async fn walk(browser: &SignedIn, pages: usize) -> anyhow::Result<Vec<String>> {
    let mut path = "/t/operator/console/users".to_owned();
    let mut visited = Vec::with_capacity(pages);
    while visited.len() < pages {
        let (_, body) = browser.page(&path).await?;
        visited.push(path);
        let Some(next) = body
            .split("<a href=\"")
            .filter_map(|rest| rest.split_once("\" rel=\"next\""))
            .map(|(href, _)| {
                href.replace("&#x3D;", "=")
                    .replace("&#x2f;", "/")
                    .replace("&#x2F;", "/")
                    .replace("&amp;", "&")
            })
            .next()
        else {
            break;
        };
        path = next;
    }
    Ok(visited)
}

/// A tenant administrator, made over the admin API and signed in through the sign-in page.
async fn sign_in_administrator(server: &ServerProcess) -> anyhow::Result<SignedIn> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let base = &server.base;
    let created: serde_json::Value = http
        .post(format!("{base}/v1/users"))
        .bearer_auth(&server.admin_key)
        .json(&CreateUser {
            user_name: "console-administrator".into(),
            ..CreateUser::default()
        })
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = created["id"].as_str().context("no user id")?;
    http.put(format!("{base}/v1/users/{id}/password"))
        .bearer_auth(&server.admin_key)
        .json(&SetPassword {
            password: BENCH_PASSWORD.into(),
            must_change: Some(false),
        })
        .send()
        .await?
        .error_for_status()?;
    http.post(format!("{base}/v1/role-assignments"))
        .bearer_auth(&server.admin_key)
        .json(&json!({"principal": {"kind": "user", "id": id}, "role": "tenant_administrator"}))
        .send()
        .await?
        .error_for_status()?;

    let form = http
        .get(format!("{base}/t/operator/sign-in"))
        .send()
        .await?;
    let csrf_cookie = cookie_pair(&form).context("no CSRF cookie")?;
    let csrf = csrf_cookie
        .split_once('=')
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default();
    let signed_in = http
        .post(format!("{base}/t/operator/sign-in"))
        .header("cookie", &csrf_cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("user_name", "console-administrator"),
            ("password", BENCH_PASSWORD),
        ])
        .send()
        .await?;
    if signed_in.status() != reqwest::StatusCode::SEE_OTHER {
        bail!(
            "the administrator's sign-in answered {}",
            signed_in.status()
        );
    }
    let session = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.contains("session="))
        .context("no session cookie")?
        .to_owned();
    Ok(SignedIn {
        http,
        base: base.clone(),
        cookies: format!("{csrf_cookie}; {session}"),
    })
}

fn cookie_pair(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}
