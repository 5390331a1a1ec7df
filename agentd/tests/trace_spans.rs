//! A handler runs inside a `tracing` span carrying the message's trace context (W3C sizes), so
//! an application's subscriber follows a message across agents; an untraced message gets none.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentbus::{Message, MessageType};
use support::*;

/// A writer into a shared buffer, for the subscriber's output.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn handlers_run_in_a_span_with_the_messages_trace_and_span_ids() {
    let bus = start("trace-spans");
    let mut sender = bus.attach("sender", "x");
    let mut receiver = bus.attach("receiver", "x");
    receiver.on_message(|_, _| tracing::info!("handled"));
    let to = sender.peer("receiver").unwrap();
    let trace_id = [0xab; 16];
    let span_id = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];
    let traced = Message::raw(sender.identity(), MessageType::Notification, b"t".to_vec())
        .trace(trace_id, span_id);
    sender.send(&to, &traced).unwrap();
    sender
        .send(
            &to,
            &Message::raw(sender.identity(), MessageType::Notification, b"u".to_vec()),
        )
        .unwrap();
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut handled = 0;
        while handled < 2 && Instant::now() < deadline {
            handled += receiver.poll(16).unwrap();
            receiver.receiver().wait_ready(Duration::from_millis(10));
        }
        assert_eq!(handled, 2);
    });
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("handled")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("agentbus.message")
            && lines[0].contains(&"ab".repeat(16))
            && lines[0].contains("0102030405060708"),
        "{}",
        lines[0]
    );
    assert!(
        !lines[1].contains("agentbus.message"),
        "untraced: no span: {}",
        lines[1]
    );
}
