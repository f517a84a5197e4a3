//! Load generator for the send benchmark (bench/send.sh): binds N users to simulated
//! people, then sends messages through the public API from this separate process.
//!
//! Phase 1 (throughput): M messages from C concurrent clients as fast as they are accepted;
//! reports accepted/s, accept latency, and sent/s end to end (until the simulator has
//! received every one). Phase 2 (latency): an open-loop fixed rate R for D seconds;
//! reports accept latency percentiles.
//!
//! Usage: send_load BASE SIM_BASE API_KEY APPID [users] [messages] [concurrency] [rate] [secs]

use reqwest::Client;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

const TEMPLATE: &str = "benchtemplate0000000000000000000000000000001";

struct Args {
    base: String,
    sim: String,
    key: String,
    appid: String,
    users: usize,
    messages: usize,
    concurrency: usize,
    rate: u64,
    secs: u64,
}

fn args() -> Args {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let get = |i: usize, d: &str| a.get(i).cloned().unwrap_or_else(|| d.to_owned());
    Args {
        base: get(0, "http://127.0.0.1:18080"),
        sim: get(1, "http://127.0.0.1:19090"),
        key: get(2, ""),
        appid: get(3, "wxbench000000001"),
        users: get(4, "2000").parse().unwrap(),
        messages: get(5, "30000").parse().unwrap(),
        concurrency: get(6, "64").parse().unwrap(),
        rate: get(7, "1000").parse().unwrap(),
        secs: get(8, "10").parse().unwrap(),
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

async fn sim_sent(c: &Client, sim: &str) -> u64 {
    let v: Value = c
        .get(format!("{sim}/_sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["template_sent"].as_u64().unwrap_or(0)
}

fn body(i: usize) -> Value {
    json!({
        "channel": "template", "app": "oa", "template_id": TEMPLATE,
        "data": {"keyword1": format!("order-{i}"), "keyword2": "顺丰速运"},
        "url": "https://shop.example.com/orders/1",
    })
}

/// One accepted send; its latency, or None when not accepted.
async fn send_one(c: &Client, a: &Args, i: usize) -> Option<Duration> {
    let user = format!("u{}", i % a.users);
    let t0 = Instant::now();
    let r = c
        .post(format!("{}/api/v1/users/{user}/messages", a.base))
        .bearer_auth(&a.key)
        .json(&body(i))
        .send()
        .await
        .ok()?;
    let took = t0.elapsed();
    if r.status() != reqwest::StatusCode::ACCEPTED {
        eprintln!(
            "send {i}: {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
        return None;
    }
    Some(took)
}

async fn setup(c: &Client, a: &Args) {
    let r = c
        .post(format!("{}/_sim/templates", a.sim))
        .json(&json!({"appid": a.appid, "kind": "template", "template_id": TEMPLATE,
                      "title": "订单发货通知", "content": "订单：{{keyword1.DATA}}\n快递：{{keyword2.DATA}}"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "template: {}", r.status());
    let slots = Arc::new(Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..a.users {
        let (c, sim, base, key, appid) = (
            c.clone(),
            a.sim.clone(),
            a.base.clone(),
            a.key.clone(),
            a.appid.clone(),
        );
        let permit = slots.clone().acquire_owned().await.unwrap();
        tasks.spawn(async move {
            let p: Value = c
                .post(format!("{sim}/_sim/people"))
                .json(&json!({}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let openid = p["openids"][&appid].as_str().unwrap().to_owned();
            let r = c
                .put(format!("{base}/api/v1/users/u{i}/identities/oa/{openid}"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "bind: {}", r.status());
            drop(permit);
        });
    }
    tasks.join_all().await;
}

#[tokio::main]
async fn main() {
    let a = Arc::new(args());
    let c = Client::builder()
        .pool_max_idle_per_host(a.concurrency.max(256))
        .build()
        .unwrap();
    let t = Instant::now();
    setup(&c, &a).await;
    eprintln!(
        "bound {} users in {:.1} s",
        a.users,
        t.elapsed().as_secs_f64()
    );
    // Warm-up: token, template list, connections.
    for i in 0..200 {
        send_one(&c, &a, i).await;
    }
    let warm_target = sim_sent(&c, &a.sim).await;
    let _ = warm_target;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Phase 1: throughput.
    let before = sim_sent(&c, &a.sim).await;
    let start = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..a.concurrency {
        let (c, a, next) = (c.clone(), a.clone(), next.clone());
        workers.spawn(async move {
            let mut lat = Vec::new();
            let mut failed = 0;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= a.messages {
                    return (lat, failed);
                }
                match send_one(&c, &a, 1000 + i).await {
                    Some(d) => lat.push(d),
                    None => failed += 1,
                }
            }
        });
    }
    let mut lat: Vec<Duration> = Vec::with_capacity(a.messages);
    let mut failed = 0;
    for (l, f) in workers.join_all().await {
        lat.extend(l);
        failed += f;
    }
    let accepted_in = start.elapsed();
    let want = before + lat.len() as u64;
    let mut sent = before;
    let deadline = Instant::now() + Duration::from_secs(300);
    while sent < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        sent = sim_sent(&c, &a.sim).await;
    }
    let e2e = start.elapsed();
    lat.sort();
    println!(
        "| throughput: {} messages, {} clients | {:.0} accepted/s | {:.0} sent/s end to end | p50 {:.2} ms | p99 {:.2} ms | {} refused | {} not sent |",
        a.messages,
        a.concurrency,
        lat.len() as f64 / accepted_in.as_secs_f64(),
        (sent - before) as f64 / e2e.as_secs_f64(),
        pct(&lat, 0.50),
        pct(&lat, 0.99),
        failed,
        want.saturating_sub(sent),
    );

    // Phase 2: accept latency at a fixed rate, open loop.
    if a.rate > 0 {
        let before = sim_sent(&c, &a.sim).await;
        let total = (a.rate * a.secs) as usize;
        let interval = Duration::from_secs_f64(1.0 / a.rate as f64);
        let start = tokio::time::Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for k in 0..total {
            tokio::time::sleep_until(start + interval * k as u32).await;
            let (c, a) = (c.clone(), a.clone());
            tasks.spawn(async move { send_one(&c, &a, 1_000_000 + k).await });
        }
        let results = tasks.join_all().await;
        let failed = results.iter().filter(|r| r.is_none()).count();
        let mut lat: Vec<Duration> = results.into_iter().flatten().collect();
        lat.sort();
        let want = before + lat.len() as u64;
        let mut sent = before;
        let deadline = Instant::now() + Duration::from_secs(120);
        while sent < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            sent = sim_sent(&c, &a.sim).await;
        }
        println!(
            "| fixed rate: {} req/s for {} s | p50 {:.2} ms | p99 {:.2} ms | max {:.2} ms | {} refused | {} not sent |",
            a.rate,
            a.secs,
            pct(&lat, 0.50),
            pct(&lat, 0.99),
            lat.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0),
            failed,
            want.saturating_sub(sent),
        );
    }
}
