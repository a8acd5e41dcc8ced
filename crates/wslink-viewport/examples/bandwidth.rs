//! What one browser receives when four views stream at 30 fps and it
//! watches one of them: frames to the view's observers only (ours) against
//! every frame to every client (ParaView's way, `broadcast_frames`).
//!
//! ```text
//! cargo run --release -p wslink-viewport --example bandwidth [SECONDS]
//! ```

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use wslink_client::Client;
use wslink_core::Value;
use wslink_server::Server;
use wslink_viewport::{Frame, RenderError, View, Viewport, FRAME_TOPIC};

/// A gradient with a bar that moves with time: a new picture each tick.
struct Moving {
    t: f32,
}

impl View for Moving {
    fn render(&mut self, frame: &mut Frame) -> Result<(), RenderError> {
        let (w, h) = (frame.width(), frame.height());
        let bar = (self.t * 120.0) as u32 % w;
        let rgb = frame.rgb_mut();
        for y in 0..h {
            for x in 0..w {
                let near = x.abs_diff(bar) < 20;
                let v = if near { 250 } else { (x * 200 / w) as u8 };
                rgb.extend_from_slice(&[v, (y * 200 / h) as u8, 120]);
            }
        }
        Ok(())
    }

    fn animate(&mut self, elapsed: Duration) -> bool {
        self.t += elapsed.as_secs_f32();
        true
    }
}

async fn run(broadcast: bool, seconds: f64) -> (u64, u64, u64) {
    let mut builder = Viewport::builder().broadcast_frames(broadcast);
    for id in ["1", "2", "3", "4"] {
        builder = builder.view(id, Moving { t: 0.0 });
    }
    let viewport = builder.animation_fps(30.0).build().unwrap();
    let server = Server::builder().protocol(viewport).build();
    let listener = server.bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr());
    tokio::spawn(listener.run());

    // One browser per view, each animating its view at 640x360.
    let mut clients = Vec::new();
    for id in ["1", "2", "3", "4"] {
        let c = Client::connect(&url, "wslink-secret").await.unwrap();
        let call = |m: &str, a: Vec<Value>| {
            let c = c.clone();
            let m = m.to_owned();
            async move { c.call(&m, a, vec![]).await.unwrap() }
        };
        call("viewport.image.push.observer.add", vec![id.into()]).await;
        call(
            "viewport.image.push.original.size",
            vec![id.into(), 640.into(), 360.into()],
        )
        .await;
        call("viewport.image.push.quality", vec![id.into(), 60.into()]).await;
        call("viewport.image.animation.start", vec![id.into()]).await;
        clients.push(c);
    }
    // The one measured watches view 1.
    let mut frames = clients[0].subscribe(FRAME_TOPIC).unwrap();
    let (mut mine, mut others, mut bytes) = (0u64, 0u64, 0u64);
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    while let Ok(Some(f)) = tokio::time::timeout_at(end.into(), frames.next()).await {
        bytes += f
            .get("image")
            .and_then(Value::as_bytes)
            .map_or(0, |b| b.len() as u64);
        if f.get("id") == Some(&Value::from("1")) {
            mine += 1;
        } else {
            others += 1;
        }
    }
    for c in clients {
        c.close().await;
    }
    (mine, others, bytes)
}

#[tokio::main]
async fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    println!("4 views at 30 fps, 640x360 JPEG q60, {seconds} s; one client watching view 1:\n");
    println!(
        "| delivery | frames of its view | frames of other views | image bytes received | MiB/s |"
    );
    println!("| --- | --- | --- | --- | --- |");
    let mut results = Vec::new();
    for broadcast in [true, false] {
        let (mine, others, bytes) = run(broadcast, seconds).await;
        let name = if broadcast {
            "to every client (ParaView's way)"
        } else {
            "to observers only (ours)"
        };
        println!(
            "| {name} | {mine} | {others} | {bytes} | {:.2} |",
            bytes as f64 / seconds / (1 << 20) as f64
        );
        results.push(bytes);
    }
    println!(
        "\nsaved: {:.0} % of the bytes",
        100.0 * (1.0 - results[1] as f64 / results[0] as f64)
    );
}
