//! The smallest useful wslink server: a method and a topic.
//!
//! ```text
//! cargo run -p hello
//! # from any wslink client (npm wslink, ours, or `wslink call`):
//! #   session.call('hello.greet', ['Ada'])  -> "Hello, Ada!"
//! #   session.subscribe('hello.ticks', ([tick]) => ...)   every second
//! ```

use std::time::Duration;

use wslink_server::{CallContext, HandlerError, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::builder()
        .secret("wslink-secret")
        .method(
            "hello.greet",
            |ctx: CallContext, (name,): (String,)| async move {
                // Tell everyone else who just said hello.
                ctx.publisher()
                    .publish_skip_last_active("hello.greeted", &name)?;
                Ok::<_, HandlerError>(format!("Hello, {name}!"))
            },
        )
        .build();

    let publisher = server.publisher();
    tokio::spawn(async move {
        for tick in 0u64.. {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = publisher.publish("hello.ticks", &tick);
        }
    });

    println!("wslink server on ws://127.0.0.1:8080/ws");
    server.serve("127.0.0.1:8080").await?;
    Ok(())
}
