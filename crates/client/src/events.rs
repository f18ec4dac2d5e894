//! Follows the node's live event stream (`GET /events`, server-sent events, one `block` event
//! per committed block) and yields each block's events.

use std::time::Duration;

use crate::{BlockEvents, Client, ClientError};

/// An open subscription to `/events`.
#[derive(Debug)]
pub struct EventStream {
    response: reqwest::Response,
    decoder: Decoder,
}

/// Turns the stream's bytes into blocks, and says when blocks were missed.
#[derive(Debug, Default)]
struct Decoder {
    buffer: Vec<u8>,
    /// Height of the last block yielded.
    last_height: Option<u64>,
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
                code: crate::ErrorCode::Unknown,
                message: format!("{url} refused the subscription"),
            });
        }
        Ok(EventStream { response, decoder: Decoder::default() })
    }
}

impl EventStream {
    /// The next block's events; `Ok(None)` when the node closed the stream, and
    /// `Err(ClientError::EventsMissed)` when blocks were skipped (the node reported that this
    /// subscriber lagged, or heights jumped): every block is seen, or the gap is said.
    pub async fn next_block(&mut self) -> Result<Option<BlockEvents>, ClientError> {
        loop {
            if let Some(block) = self.decoder.next_block()? {
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
            self.decoder.buffer.extend_from_slice(&chunk);
        }
    }
}

impl Decoder {
    /// The next complete block in the buffer, checked to follow the previous one.
    fn next_block(&mut self) -> Result<Option<BlockEvents>, ClientError> {
        let Some(block) = self.take_event()? else { return Ok(None) };
        let after = self.last_height;
        self.last_height = Some(block.height);
        if let Some(last) = after
            && block.height != last + 1
        {
            return Err(ClientError::EventsMissed {
                after,
                why: format!("the next block was {}", block.height),
            });
        }
        Ok(Some(block))
    }

    /// Parses one complete SSE message out of the buffer, skipping keep-alives.
    fn take_event(&mut self) -> Result<Option<BlockEvents>, ClientError> {
        loop {
            let Some(end) = find_message_end(&self.buffer) else { return Ok(None) };
            let message: Vec<u8> = self.buffer.drain(..end.0 + end.1).collect();
            let text = String::from_utf8_lossy(&message[..end.0]);
            let name = text.lines().find_map(|l| l.strip_prefix("event:")).map(str::trim);
            if name == Some("lagged") {
                return Err(ClientError::EventsMissed {
                    after: self.last_height,
                    why: "the node reported that this subscriber fell behind".into(),
                });
            }
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
    use super::{Decoder, find_message_end};
    use crate::ClientError;

    fn block(height: u64) -> String {
        format!("event: block\ndata: {{\"height\":{height},\"time\":\"t\",\"events\":[]}}\n\n")
    }

    #[test]
    fn a_lagged_stream_or_a_height_gap_is_reported_not_skipped() {
        let mut d = Decoder::default();
        d.buffer.extend_from_slice(block(1).as_bytes());
        d.buffer.extend_from_slice(b": keep-alive\n\n");
        d.buffer.extend_from_slice(block(2).as_bytes());
        d.buffer
            .extend_from_slice(b"event: lagged\ndata: {\"lagged\":true,\"missed_blocks\":7}\n\n");
        assert_eq!(d.next_block().unwrap().unwrap().height, 1);
        assert_eq!(d.next_block().unwrap().unwrap().height, 2);
        assert!(matches!(d.next_block(), Err(ClientError::EventsMissed { after: Some(2), .. })));

        let mut d = Decoder::default();
        d.buffer.extend_from_slice((block(5) + &block(9)).as_bytes());
        assert_eq!(d.next_block().unwrap().unwrap().height, 5);
        assert!(matches!(d.next_block(), Err(ClientError::EventsMissed { after: Some(5), .. })));
        assert!(d.next_block().unwrap().is_none());
    }

    #[test]
    fn messages_split_on_blank_lines() {
        assert_eq!(find_message_end(b"data: x\n\nrest"), Some((7, 2)));
        assert_eq!(find_message_end(b"data: x\r\n\r\n"), Some((7, 4)));
        assert_eq!(find_message_end(b"data: x\n"), None);
    }
}
