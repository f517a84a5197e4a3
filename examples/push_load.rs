//! Load generator for the push endpoint (run by bench/push.sh as a separate process): safe-mode
//! delivery reports, each with its own nonce and msgid, signed and encrypted as WeChat does,
//! from `connections` concurrent keep-alive connections for `seconds`.
//!
//! Usage: push_load URL TOKEN ENCODING_AES_KEY APPID SECONDS CONNECTIONS
//! Prints one line: pushes/s, p50, p99, max, and any answer other than 200 `success`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wxlink::wechat::crypto::{MessageCrypto, signature};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!("usage: push_load URL TOKEN ENCODING_AES_KEY APPID SECONDS CONNECTIONS");
        std::process::exit(2);
    }
    let url = Arc::new(args[1].clone());
    let token = Arc::new(args[2].clone());
    let crypto = Arc::new(MessageCrypto::new(&args[3]).expect("a 43-character EncodingAESKey"));
    let appid = Arc::new(args[4].clone());
    let secs: u64 = args[5].parse().expect("seconds");
    let conns: usize = args[6].parse().expect("connections");

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(conns)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let next = Arc::new(AtomicU64::new(1));
    let failures = Arc::new(AtomicU64::new(0));
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut workers = Vec::new();
    for _ in 0..conns {
        let (client, url, token, crypto, appid) = (
            client.clone(),
            url.clone(),
            token.clone(),
            crypto.clone(),
            appid.clone(),
        );
        let (next, failures) = (next.clone(), failures.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::new();
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let (query, body) = push(&token, &crypto, &appid, run_id as u64, n);
                let t0 = Instant::now();
                let ok = match client
                    .post(format!("{url}?{query}"))
                    .header("content-type", "text/xml")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) => r.status() == 200 && r.text().await.is_ok_and(|t| t == "success"),
                    Err(_) => false,
                };
                latencies.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
        all[i] as f64 / 1000.0
    };
    println!(
        "pushes={} seconds={elapsed:.1} pushes_per_sec={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} failures={}",
        all.len(),
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        pct(1.0),
        failures.load(Ordering::Relaxed)
    );
}

/// One TEMPLATESENDJOBFINISH in safe mode: the query and the body.
fn push(token: &str, crypto: &MessageCrypto, appid: &str, run: u64, n: u64) -> (String, String) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ts = now.to_string();
    let nonce = format!("{run}{n}");
    let msgid = run * 1_000_000_000 + n;
    let xml = format!(
        "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[oBench{}]]></FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>{msgid}</MsgID><Status><![CDATA[success]]></Status></xml>",
        n % 1000
    );
    let encrypt = crypto.encrypt(&xml, appid);
    let query = format!(
        "signature={}&timestamp={ts}&nonce={nonce}&openid=oBench&encrypt_type=aes&msg_signature={}",
        signature(&[token, &ts, &nonce]),
        signature(&[token, &ts, &nonce, &encrypt])
    );
    let body = format!(
        "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    );
    (query, body)
}
