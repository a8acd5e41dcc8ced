//! The viewport against a live server and the Rust client, in both wire
//! generations: bad input refused and harmless, floods coalesced, renders
//! off the runtime and one at a time, observers that come and go.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use wslink_client::{Client, Error, Subscription};
use wslink_core::{Generation, Value};
use wslink_server::{CallContext, HandlerError, Server};
use wslink_viewport::{
    Frame, Interaction, MouseAction, RenderError, View, Viewport, ViewportHandle, FRAME_TOPIC,
};

const SECRET: &str = "wslink-secret";

/// A view that paints one colour, records what it is told, and can be slow.
struct Probe {
    seen: Arc<Mutex<Vec<Interaction>>>,
    render_time: Duration,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    shade: u8,
}

impl View for Probe {
    fn render(&mut self, frame: &mut Frame) -> Result<(), RenderError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(self.render_time);
        let n = frame.width() as usize * frame.height() as usize;
        frame
            .rgb_mut()
            .extend(std::iter::repeat_n(self.shade, n * 3));
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }

    fn interact(&mut self, event: &Interaction) -> bool {
        self.seen.lock().unwrap().push(event.clone());
        self.shade = self.shade.wrapping_add(1);
        true
    }
}

struct Fixture {
    url: String,
    handle: ViewportHandle,
    seen: Arc<Mutex<Vec<Interaction>>>,
    max_in_flight: Arc<AtomicUsize>,
    _server: Server,
}

async fn start(render_time: Duration) -> Fixture {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let probe = |shade| Probe {
        seen: seen.clone(),
        render_time,
        in_flight: Arc::new(AtomicUsize::new(0)),
        max_in_flight: max_in_flight.clone(),
        shade,
    };
    let viewport = Viewport::builder()
        .view("1", probe(0))
        .view("2", probe(128))
        .build()
        .unwrap();
    let handle = viewport.handle();
    let server = Server::builder()
        .secret(SECRET)
        .protocol(viewport)
        .method("test.ping", |_ctx: CallContext, (): ()| async {
            Ok::<_, HandlerError>("pong")
        })
        .build();
    let listener = server.bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr());
    tokio::spawn(listener.run());
    Fixture {
        url,
        handle,
        seen,
        max_in_flight,
        _server: server,
    }
}

async fn connect(url: &str, generation: Generation) -> Client {
    Client::builder(url)
        .secret(SECRET)
        .generation(generation)
        .connect()
        .await
        .unwrap()
}

async fn call(client: &Client, method: &str, args: Vec<Value>) -> Result<Value, Error> {
    client.call(method, args, vec![]).await
}

/// The next frame, or a panic after `wait`.
async fn next_frame(frames: &mut Subscription, wait: Duration) -> Value {
    tokio::time::timeout(wait, frames.next())
        .await
        .expect("no frame in time")
        .expect("subscription ended")
}

async fn no_frame(frames: &mut Subscription, wait: Duration) {
    if let Ok(Some(frame)) = tokio::time::timeout(wait, frames.next()).await {
        panic!(
            "unexpected frame: id {:?} size {:?}",
            frame.get("id"),
            frame.get("size")
        );
    }
}

fn size_of(frame: &Value) -> (u64, u64) {
    let size = frame.get("size").and_then(Value::as_array).unwrap();
    (size[0].as_u64().unwrap(), size[1].as_u64().unwrap())
}

fn mouse(action: &str, x: f64, y: f64, left: i64) -> Value {
    Value::map([
        ("action", Value::from(action)),
        ("x", Value::from(x)),
        ("y", Value::from(y)),
        ("buttonLeft", Value::from(left)),
        ("buttonMiddle", Value::from(0)),
        ("buttonRight", Value::from(0)),
        ("shiftKey", Value::from(0)),
        ("altKey", Value::from(0)),
        ("ctrlKey", Value::from(0)),
        ("metaKey", Value::from(0)),
        ("view", Value::from("-1")),
    ])
}

fn obj(entries: Vec<(&str, Value)>) -> Value {
    Value::map(entries)
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    for generation in [Generation::V2, Generation::V1] {
        let fx = start(Duration::ZERO).await;
        let client = connect(&fx.url, generation).await;
        let mut frames = client.subscribe(FRAME_TOPIC).unwrap();
        let added = call(
            &client,
            "viewport.image.push.observer.add",
            vec!["-1".into()],
        )
        .await
        .unwrap();
        assert_eq!(added.get("viewId"), Some(&Value::from("1")));
        call(
            &client,
            "viewport.image.push.original.size",
            vec![(-1).into(), 320.into(), 200.into()],
        )
        .await
        .unwrap();
        call(
            &client,
            "viewport.image.push.quality",
            vec![(-1).into(), 70.into()],
        )
        .await
        .unwrap();
        // Settle: take frames until a 320x200 one, then nothing more comes.
        loop {
            let f = next_frame(&mut frames, Duration::from_secs(2)).await;
            if size_of(&f) == (320, 200) {
                break;
            }
        }
        no_frame(&mut frames, Duration::from_millis(200)).await;
        let before = fx.handle.stats("1").unwrap();

        let null = Value::Nil;
        let cases: Vec<(&str, Vec<Value>, &str)> = vec![
            (
                "viewport.image.push.observer.add",
                vec!["nope".into()],
                "unknown view id \"nope\"",
            ),
            (
                "viewport.image.push.observer.add",
                vec![7.into()],
                "unknown view id \"7\"",
            ),
            (
                "viewport.image.push.observer.add",
                vec![1.5.into()],
                "`view` must be a view id",
            ),
            (
                "viewport.image.push.observer.add",
                vec![],
                "`viewId` is missing",
            ),
            (
                "viewport.image.push.original.size",
                vec![(-1).into(), 0.into(), 10.into()],
                "`width` must be at least 1 pixel",
            ),
            (
                "viewport.image.push.original.size",
                vec![(-1).into(), 10.into(), (-5).into()],
                "`height` must be at least 1 pixel",
            ),
            (
                "viewport.image.push.original.size",
                vec![(-1).into(), 100_000.into(), 100_000.into()],
                "`width` must be at most 8192 pixels",
            ),
            (
                "viewport.image.push.original.size",
                vec![(-1).into(), 8000.into(), 8000.into()],
                "over the bound of 8294400",
            ),
            (
                "viewport.image.push.original.size",
                vec![(-1).into(), "wide".into(), 10.into()],
                "`width` must be a number, got string",
            ),
            (
                "viewport.image.push.original.size",
                vec![(-1).into(), 10.into()],
                "`height` is missing",
            ),
            (
                "viewport.image.push",
                vec![obj(vec![
                    ("view", (-1).into()),
                    ("size", Value::Array(vec![0.into(), 0.into()])),
                ])],
                "`width` must be at least 1 pixel",
            ),
            (
                "viewport.image.push",
                vec![obj(vec![("view", (-1).into()), ("size", Value::from(5))])],
                "`size` must be an array",
            ),
            (
                "viewport.image.push",
                vec!["-1".into()],
                "`options` must be an object",
            ),
            (
                "viewport.image.push",
                vec![obj(vec![("view", "9".into())])],
                "unknown view id \"9\"",
            ),
            (
                "viewport.image.push.quality",
                vec![(-1).into(), 101.into()],
                "`quality` must be between 0 and 100, got 101",
            ),
            (
                "viewport.image.push.quality",
                vec![(-1).into(), (-1).into()],
                "`quality` must be between 0 and 100, got -1",
            ),
            (
                "viewport.image.push.quality",
                vec![(-1).into(), "high".into()],
                "`quality` must be a number",
            ),
            (
                "viewport.image.push.quality",
                vec![(-1).into(), 50.into(), 0.into()],
                "`ratio` must be in (0, 4]",
            ),
            (
                "viewport.image.animation.fps.max",
                vec![0.into()],
                "`fps` must be in (0, 240]",
            ),
            ("viewport.mouse.interaction", vec![], "`event` is missing"),
            (
                "viewport.mouse.interaction",
                vec![5.into()],
                "`event` must be an object, got integer",
            ),
            (
                "viewport.mouse.interaction",
                vec![obj(vec![("action", "down".into())])],
                "`x` is missing",
            ),
            (
                "viewport.mouse.interaction",
                vec![obj(vec![("x", 0.5.into()), ("y", 0.5.into())])],
                "`action` is missing",
            ),
            (
                "viewport.mouse.interaction",
                vec![obj(vec![
                    ("action", "down".into()),
                    ("x", "left".into()),
                    ("y", 0.into()),
                ])],
                "`x` must be a number, got string",
            ),
            (
                "viewport.mouse.interaction",
                vec![obj(vec![
                    ("action", "down".into()),
                    ("x", 0.into()),
                    ("y", null.clone()),
                ])],
                "`y` is missing",
            ),
            (
                "viewport.mouse.interaction",
                vec![obj(vec![
                    ("action", "hover".into()),
                    ("x", 0.into()),
                    ("y", 0.into()),
                ])],
                "`action` must be \"down\", \"up\" or \"move\"",
            ),
            (
                "viewport.mouse.interaction",
                vec![obj(vec![
                    ("action", "down".into()),
                    ("x", 0.into()),
                    ("y", 0.into()),
                    ("buttonLeft", "yes".into()),
                ])],
                "`buttonLeft` must be 0, 1, true or false",
            ),
            (
                "viewport.mouse.interaction",
                vec![obj(vec![
                    ("action", "down".into()),
                    ("x", 0.into()),
                    ("y", 0.into()),
                    ("view", "nope".into()),
                ])],
                "unknown view id \"nope\"",
            ),
            (
                "viewport.mouse.zoom.wheel",
                vec![obj(vec![("type", "MouseWheel".into())])],
                "`spinY` is missing",
            ),
            (
                "viewport.mouse.zoom.wheel",
                vec![obj(vec![("type", 3.into()), ("spinY", 1.into())])],
                "`type` must be a string",
            ),
            (
                "viewport.camera.update",
                vec![
                    (-1).into(),
                    Value::Array(vec![0.into()]),
                    Value::Array(vec![]),
                    Value::Array(vec![]),
                ],
                "`focalPoint` must be an array of 3 numbers",
            ),
        ];
        for (method, args, expected) in cases {
            let err = call(&client, method, args.clone())
                .await
                .expect_err(&format!("{method} {args:?} was accepted"));
            let text = err.to_string();
            assert!(
                text.contains(expected),
                "{generation:?} {method} {args:?}: got {text:?}, expected it to contain {expected:?}"
            );
        }

        // Nothing changed: no frame, no event, and the next frame has the
        // size and quality set before the bad calls.
        no_frame(&mut frames, Duration::from_millis(300)).await;
        let after = fx.handle.stats("1").unwrap();
        assert_eq!((after.frames, after.events), (before.frames, before.events));
        assert_eq!(fx.handle.observers("1"), Some(1));
        call(
            &client,
            "viewport.image.push",
            vec![obj(vec![("view", "-1".into())])],
        )
        .await
        .unwrap();
        let f = next_frame(&mut frames, Duration::from_secs(2)).await;
        assert_eq!(size_of(&f), (320, 200), "{generation:?}");
        assert_eq!(f.get("quality"), Some(&Value::from(70)), "{generation:?}");
        assert!(f
            .get("image")
            .and_then(Value::as_bytes)
            .is_some_and(|b| b.starts_with(&[0xFF, 0xD8])));
        // The connection is still healthy after all that.
        assert!(!client.is_closed());
        client.close().await;
    }
}

#[tokio::test]
async fn a_flood_of_mouse_events_is_coalesced() {
    // 20 ms a frame: the flood arrives far faster than frames can follow.
    let fx = start(Duration::from_millis(20)).await;
    let client = connect(&fx.url, Generation::V2).await;
    let mut frames = client.subscribe(FRAME_TOPIC).unwrap();
    call(
        &client,
        "viewport.image.push.observer.add",
        vec![(-1).into()],
    )
    .await
    .unwrap();
    next_frame(&mut frames, Duration::from_secs(2)).await;

    const MOVES: usize = 5_000;
    let started = Instant::now();
    call(
        &client,
        "viewport.mouse.interaction",
        vec![mouse("down", 0.0, 0.5, 1)],
    )
    .await
    .unwrap();
    // 100 calls in flight at a time, as a client firing without waiting.
    for batch in 0..MOVES / 100 {
        let calls = (0..100).map(|i| {
            let x = (batch * 100 + i + 1) as f64 / MOVES as f64;
            call(
                &client,
                "viewport.mouse.interaction",
                vec![mouse("down", x, 0.5, 1)],
            )
        });
        for r in futures_util::future::join_all(calls).await {
            r.unwrap();
        }
    }
    call(
        &client,
        "viewport.mouse.interaction",
        vec![mouse("up", 1.0, 0.5, 0)],
    )
    .await
    .unwrap();
    let sent = started.elapsed();

    // Wait for the view to have seen the release.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = fx.seen.lock().unwrap().clone();
        if matches!(seen.last(), Some(Interaction::Mouse(m)) if m.action == MouseAction::Up) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the release never reached the view"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = fx.seen.lock().unwrap().clone();
    let stats = fx.handle.stats("1").unwrap();
    println!(
        "{} events in {sent:?}: the view saw {}, {} frames, {} coalesced, {} dropped",
        MOVES + 2,
        seen.len(),
        stats.frames,
        stats.events_coalesced,
        stats.events_dropped
    );
    assert_eq!(stats.events, MOVES as u64 + 2);
    assert_eq!(
        stats.events_dropped, 0,
        "a drag coalesces; nothing is dropped"
    );
    assert_eq!(
        stats.events_coalesced + seen.len() as u64,
        stats.events,
        "every event was either handed over or merged"
    );
    assert!(
        seen.len() < MOVES / 10,
        "{} events reached the view one by one",
        seen.len()
    );
    // The press and the last position both got through.
    match (&seen[0], &seen[seen.len() - 2]) {
        (Interaction::Mouse(first), Interaction::Mouse(last)) => {
            assert_eq!((first.action, first.x), (MouseAction::Down, 0.0));
            assert_eq!((last.action, last.x), (MouseAction::Down, 1.0));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fx.max_in_flight.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn renders_run_off_the_runtime_one_at_a_time() {
    // The test's runtime has a single thread: a render on it would hold
    // every call below for the render's 400 ms.
    let fx = start(Duration::from_millis(400)).await;
    let client = connect(&fx.url, Generation::V2).await;
    let mut frames = client.subscribe(FRAME_TOPIC).unwrap();
    call(
        &client,
        "viewport.image.push.observer.add",
        vec![(-1).into()],
    )
    .await
    .unwrap();
    // The first render is under way; calls are answered meanwhile.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..5 {
        let t = Instant::now();
        call(&client, "test.ping", vec![]).await.unwrap();
        call(
            &client,
            "viewport.image.push",
            vec![obj(vec![("view", (-1).into())])],
        )
        .await
        .unwrap();
        assert!(
            t.elapsed() < Duration::from_millis(150),
            "calls waited {:?} for a render",
            t.elapsed()
        );
    }
    // Five pushes during one render: one more frame (latest wins), not five.
    next_frame(&mut frames, Duration::from_secs(2)).await;
    next_frame(&mut frames, Duration::from_secs(2)).await;
    no_frame(&mut frames, Duration::from_millis(600)).await;
    assert_eq!(fx.handle.stats("1").unwrap().frames, 2);
    assert_eq!(fx.max_in_flight.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn views_render_only_for_observers_and_a_closed_page_stops_its_renders() {
    let fx = start(Duration::ZERO).await;
    let watcher = connect(&fx.url, Generation::V2).await;
    let mut frames = watcher.subscribe(FRAME_TOPIC).unwrap();
    // No observer yet: a push renders nothing.
    call(
        &watcher,
        "viewport.image.push",
        vec![obj(vec![("view", "2".into())])],
    )
    .await
    .unwrap();
    no_frame(&mut frames, Duration::from_millis(300)).await;
    assert_eq!(fx.handle.stats("2").unwrap().frames, 0);

    // A second page observes view 2 and gets frames, tagged with the id;
    // the watcher, observing nothing, is sent none of them.
    let page = connect(&fx.url, Generation::V1).await;
    let mut page_frames = page.subscribe(FRAME_TOPIC).unwrap();
    let added = call(&page, "viewport.image.push.observer.add", vec![2.into()])
        .await
        .unwrap();
    assert_eq!(added.get("viewId"), Some(&Value::from("2")));
    let f = next_frame(&mut page_frames, Duration::from_secs(2)).await;
    assert_eq!(f.get("id"), Some(&Value::from("2")));
    assert_eq!(fx.handle.observers("2"), Some(1));
    no_frame(&mut frames, Duration::from_millis(300)).await;

    // The page goes away without a word: its observer goes with it, and
    // view 2 renders nothing more, whoever asks. (A subscription keeps
    // its connection open: both go.)
    drop(page_frames);
    drop(page);
    let deadline = Instant::now() + Duration::from_secs(3);
    while fx.handle.observers("2") != Some(0) {
        assert!(
            Instant::now() < deadline,
            "the closed page still observes view 2"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let frames_then = fx.handle.stats("2").unwrap().frames;
    call(
        &watcher,
        "viewport.image.push",
        vec![obj(vec![("view", "2".into())])],
    )
    .await
    .unwrap();
    call(
        &watcher,
        "viewport.mouse.interaction",
        vec![mouse("down", 0.3, 0.3, 1)],
    )
    .await
    .unwrap();
    no_frame(&mut frames, Duration::from_millis(300)).await;
    assert_eq!(fx.handle.stats("2").unwrap().frames, frames_then);

    // observer.remove undoes observer.add.
    call(
        &watcher,
        "viewport.image.push.observer.add",
        vec!["2".into()],
    )
    .await
    .unwrap();
    next_frame(&mut frames, Duration::from_secs(2)).await;
    call(
        &watcher,
        "viewport.image.push.observer.remove",
        vec!["2".into()],
    )
    .await
    .unwrap();
    assert_eq!(fx.handle.observers("2"), Some(0));
}

#[tokio::test]
async fn quality_ratio_and_still_frames_follow_remote_views_calls() {
    let fx = start(Duration::ZERO).await;
    let client = connect(&fx.url, Generation::V2).await;
    let mut frames = client.subscribe(FRAME_TOPIC).unwrap();
    call(
        &client,
        "viewport.image.push.observer.add",
        vec!["-1".into()],
    )
    .await
    .unwrap();
    call(
        &client,
        "viewport.image.push.original.size",
        vec!["-1".into(), 400.into(), 300.into()],
    )
    .await
    .unwrap();
    while size_of(&next_frame(&mut frames, Duration::from_secs(2)).await) != (400, 300) {}
    let mut got = Vec::new();
    let mut keep = |f: Value| {
        got.push((
            f.get("quality").and_then(Value::as_u64).unwrap(),
            size_of(&f),
        ))
    };
    // What RemoteView does on a press, the drag, and the release.
    call(
        &client,
        "viewport.image.push.quality",
        vec!["-1".into(), 60.into(), 0.5.into()],
    )
    .await
    .unwrap();
    for i in 0..5 {
        call(
            &client,
            "viewport.mouse.interaction",
            vec![mouse("down", 0.1 * i as f64, 0.5, 1)],
        )
        .await
        .unwrap();
        // Each move's frame, before the next move.
        keep(next_frame(&mut frames, Duration::from_secs(2)).await);
    }
    call(
        &client,
        "viewport.mouse.interaction",
        vec![mouse("up", 0.5, 0.5, 0)],
    )
    .await
    .unwrap();
    call(
        &client,
        "viewport.image.push.quality",
        vec!["-1".into(), 100.into(), 1.into()],
    )
    .await
    .unwrap();
    call(
        &client,
        "viewport.image.push",
        vec![obj(vec![
            ("view", "-1".into()),
            ("size", Value::Array(vec![400.into(), 300.into()])),
        ])],
    )
    .await
    .unwrap();
    while let Ok(Some(f)) = tokio::time::timeout(Duration::from_millis(400), frames.next()).await {
        keep(f);
    }
    assert!(
        got.iter().any(|&(q, s)| q == 60 && s == (200, 150)),
        "no interactive frame at half size: {got:?}"
    );
    assert_eq!(got.last(), Some(&(100, (400, 300))), "{got:?}");
}

/// The calls vtk.js 37.4.3's RemoteView really made in Chromium (captured
/// by tests/browser/remote-view.test.mjs with CAPTURE_VTKJS_CALLS=1),
/// replayed against the viewport in order.
#[tokio::test]
async fn remote_views_captured_calls_replay() {
    let text = include_str!("fixtures/vtkjs-calls.json");
    let fixture: serde_json::Value = serde_json::from_str(text).unwrap();
    let calls = |part: &str| -> Vec<(String, Vec<Value>)> {
        fixture[part]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let method = c[0].as_str().unwrap().to_owned();
                let args: Vec<Value> = serde_json::from_value(c[1].clone()).unwrap();
                (method, args)
            })
            .collect()
    };
    let fx = start(Duration::ZERO).await;
    let client = connect(&fx.url, Generation::V2).await;
    let mut frames = client.subscribe(FRAME_TOPIC).unwrap();
    let replay = |part: &str| {
        let calls = calls(part);
        let client = client.clone();
        async move {
            for (method, args) in calls {
                call(&client, &method, args)
                    .await
                    .unwrap_or_else(|e| panic!("{method}: {e}"));
                // vtk.js sends moves 33 ms apart at most; keep some room
                // for frames to go out between them.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    // Drains frames until `quiet` passes without one; returns (quality, size).
    async fn drain(frames: &mut Subscription, quiet: Duration) -> Vec<(u64, (u64, u64))> {
        let mut got = Vec::new();
        while let Ok(Some(f)) = tokio::time::timeout(quiet, frames.next()).await {
            got.push((
                f.get("quality").and_then(Value::as_u64).unwrap(),
                size_of(&f),
            ));
        }
        got
    }

    replay("connect").await;
    let got = drain(&mut frames, Duration::from_millis(300)).await;
    assert_eq!(got.last().map(|f| f.1), Some((800, 500)), "{got:?}");

    fx.seen.lock().unwrap().clear();
    replay("drag").await;
    let got = drain(&mut frames, Duration::from_millis(300)).await;
    assert!(
        got.iter().filter(|f| f.0 == 60).count() >= 5,
        "frames while dragging: {got:?}"
    );
    assert_eq!(
        got.last(),
        Some(&(100, (800, 500))),
        "the still frame comes last: {got:?}"
    );
    let seen = fx.seen.lock().unwrap().clone();
    match (seen.first(), seen.last()) {
        (Some(Interaction::Mouse(press)), Some(Interaction::Mouse(release))) => {
            assert_eq!(
                (press.action, press.x, press.y),
                (MouseAction::Down, 0.375, 0.5)
            );
            assert!(press.buttons.left);
            assert_eq!(release.action, MouseAction::Up);
        }
        other => panic!("the view saw {other:?}"),
    }

    replay("wheel").await;
    let got = drain(&mut frames, Duration::from_millis(300)).await;
    assert!(
        got.iter().any(|f| f.0 == 60),
        "frames while wheeling: {got:?}"
    );
    assert_eq!(got.last().map(|f| f.0), Some(100), "{got:?}");
    let wheels = fx
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Interaction::Wheel(_)))
        .count();
    assert!(wheels >= 4, "the view saw {wheels} wheel events");

    replay("resize").await;
    let got = drain(&mut frames, Duration::from_millis(300)).await;
    assert_eq!(got.last(), Some(&(100, (640, 360))), "{got:?}");
}
