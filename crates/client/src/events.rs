//! Follows the node's live event stream (`GET /events`, server-sent events, one `block` event
//! per committed block) and yields each block's events.

use std::time::Duration;

use crate::{BlockEvents, Client, ClientError};

/// An open subscription to `/events`.
#[derive(Debug)]
pub struct EventStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl Client {
    /// Subscribes to committed blocks' events; `types` filters by event type (all when empty).
    /// The subscription starts at the next committed block: callers that must not miss
    /// anything reconcile from the list endpoints after subscribing.
    pub async fn subscribe(&self, types: &[&str]) -> Result<EventStream, ClientError> {
        let mut url = format!("{}/events", self.url());
        if !types.is_empty() {
            url.push_str("?types=");
            url.push_str(&types.join(","));
        }
        // A stream must not time out as a whole: a client without a request timeout.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::BadResponse(e.to_string()))?;
        let response = http
            .get(&url)
            .send()
            .await
            .map_err(|source| ClientError::Unreachable { url: self.url().to_string(), source })?;
        if !response.status().is_success() {
            return Err(ClientError::Refused {
                status: response.status().as_u16(),
                code: "http".into(),
                message: format!("{url} refused the subscription"),
            });
        }
        Ok(EventStream { response, buffer: Vec::new() })
    }
}

impl EventStream {
    /// The next block's events; `Ok(None)` when the node closed the stream.
    pub async fn next_block(&mut self) -> Result<Option<BlockEvents>, ClientError> {
        loop {
            if let Some(block) = self.take_event()? {
                return Ok(Some(block));
            }
            let Some(chunk) = self
                .response
                .chunk()
                .await
                .map_err(|e| ClientError::BadResponse(format!("event stream broke: {e}")))?
            else {
                return Ok(None);
            };
            self.buffer.extend_from_slice(&chunk);
        }
    }

    /// Parses one complete SSE message out of the buffer, skipping keep-alives.
    fn take_event(&mut self) -> Result<Option<BlockEvents>, ClientError> {
        loop {
            let Some(end) = find_message_end(&self.buffer) else { return Ok(None) };
            let message: Vec<u8> = self.buffer.drain(..end.0 + end.1).collect();
            let text = String::from_utf8_lossy(&message[..end.0]);
            let data: String = text
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect::<Vec<_>>()
                .join("\n");
            if data.is_empty() {
                continue;
            }
            return serde_json::from_str(&data)
                .map(Some)
                .map_err(|e| ClientError::BadResponse(format!("bad event: {e}")));
        }
    }
}

/// Where the first SSE message ends: (length of the message, length of the separator).
fn find_message_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::find_message_end;

    #[test]
    fn messages_split_on_blank_lines() {
        assert_eq!(find_message_end(b"data: x\n\nrest"), Some((7, 2)));
        assert_eq!(find_message_end(b"data: x\r\n\r\n"), Some((7, 4)));
        assert_eq!(find_message_end(b"data: x\n"), None);
    }
}
