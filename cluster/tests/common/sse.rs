//! A blocking reader of server-sent events, for the subscription tests.

use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use serde_json::Value;

/// One event as the server framed it.
#[derive(Clone, Debug)]
pub struct SseEvent {
    pub id: Option<String>,
    pub kind: String,
    pub data: Value,
}

/// An open `text/event-stream` response, read event by event.
pub struct SseStream {
    reader: BufReader<Box<dyn Read + Send>>,
}

impl SseStream {
    /// Opens `url`, resuming after `last_event_id` if given. Panics unless the answer is a
    /// 200 event stream.
    pub fn open(url: &str, last_event_id: Option<&str>) -> SseStream {
        let client = reqwest::blocking::Client::builder()
            .timeout(None::<Duration>)
            .build()
            .expect("an HTTP client");
        let mut request = client.get(url).header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = response.status().as_u16();
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if status != 200 {
            panic!(
                "GET {url}: status {status}: {}",
                response.text().unwrap_or_default()
            );
        }
        assert!(kind.starts_with("text/event-stream"), "GET {url}: {kind}");
        SseStream {
            reader: BufReader::new(Box::new(response)),
        }
    }

    /// The next event; `None` when the server closed the stream. Comments (keep-alives)
    /// are skipped.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        let mut id = None;
        let mut kind = String::from("message");
        let mut data = String::new();
        let mut any = false;
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if any {
                    let data = serde_json::from_str(&data)
                        .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {data}"));
                    return Some(SseEvent { id, kind, data });
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            any = true;
            match field {
                "id" => id = Some(value.to_string()),
                "event" => kind = value.to_string(),
                "data" => {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(value);
                }
                _ => {}
            }
        }
    }
}
