//! Command handling of [`ServerSession`]: connect, stream creation, publish and friends,
//! with the `_result` / `onStatus` replies clients (ffmpeg, OBS/librtmp, GStreamer) expect.
//! Clients differ in order (some publish before the FCPublish reply arrives): every
//! command is answered on its own, without waiting for a particular sequence.

use super::RtmpError;
use super::amf0::Amf0Value;
use super::events::SessionEvent;
use super::message;
use super::session::{MAX_STREAMS, Publish, ServerSession};

/// Description sent with `NetStream.Play.Failed`.
pub const PLAY_REFUSED: &str = "this is an ingest endpoint; play from an edge";

fn status(level: &str, code: &str, description: &str) -> Amf0Value {
    Amf0Value::object([
        ("level", Amf0Value::string(level)),
        ("code", Amf0Value::string(code)),
        ("description", Amf0Value::string(description)),
    ])
}

impl ServerSession {
    pub(super) fn on_command(&mut self, stream_id: u32, values: Vec<Amf0Value>) -> Result<(), RtmpError> {
        let mut it = values.into_iter();
        let Some(Amf0Value::String(name)) = it.next() else {
            self.stats.ignored_messages += 1;
            return Ok(());
        };
        let txn = it.next().and_then(|v| v.as_number()).unwrap_or(0.0);
        let object = it.next().unwrap_or(Amf0Value::Null);
        let args: Vec<Amf0Value> = it.collect();
        if name == "connect" {
            return self.on_connect(txn, &object);
        }
        if self.app.is_none() {
            return Err(RtmpError::Protocol("command before connect"));
        }
        let first_str = args.first().and_then(Amf0Value::as_str).unwrap_or("");
        match name.as_str() {
            "releaseStream" => self.result(txn, Amf0Value::Undefined),
            "FCPublish" => {
                let info = Amf0Value::object([
                    ("code", Amf0Value::string("NetStream.Publish.Start")),
                    ("description", Amf0Value::string("FCPublish")),
                ]);
                self.send(message::command(
                    0,
                    &[Amf0Value::string("onFCPublish"), Amf0Value::Number(0.0), Amf0Value::Null, info],
                ))?;
                self.result(txn, Amf0Value::Undefined)
            }
            "createStream" => self.on_create_stream(txn),
            "publish" => {
                let key = first_str.to_owned();
                self.on_publish(stream_id, key)
            }
            "FCUnpublish" => {
                if let Some(sid) = self.publish_stream() {
                    self.unpublish(sid)?;
                }
                self.result(txn, Amf0Value::Undefined)
            }
            "deleteStream" => {
                let id = args.first().and_then(Amf0Value::as_number).unwrap_or(-1.0);
                self.streams.retain(|&s| f64::from(s) != id);
                match self.publish_stream() {
                    Some(sid) if f64::from(sid) == id => self.unpublish(sid),
                    _ => Ok(()),
                }
            }
            "closeStream" => match self.publish_stream() {
                Some(sid) if sid == stream_id => self.unpublish(sid),
                _ => Ok(()),
            },
            "play" | "play2" => {
                let stream = first_str.to_owned();
                self.on_status(stream_id, "error", "NetStream.Play.Failed", PLAY_REFUSED)?;
                self.push_event(SessionEvent::PlayRefused { stream })
            }
            // Replies to calls we never make, and notifications: nothing to answer.
            "_result" | "_error" | "onStatus" | "onBWDone" | "_checkbw" => {
                self.stats.ignored_messages += 1;
                Ok(())
            }
            _ => {
                self.stats.ignored_messages += 1;
                if txn == 0.0 {
                    return Ok(());
                }
                self.send(message::command(
                    0,
                    &[
                        Amf0Value::string("_error"),
                        Amf0Value::Number(txn),
                        Amf0Value::Null,
                        status("error", "NetConnection.Call.Failed", "unknown command"),
                    ],
                ))
            }
        }
    }

    fn on_connect(&mut self, txn: f64, object: &Amf0Value) -> Result<(), RtmpError> {
        if self.app.is_some() {
            return Err(RtmpError::Protocol("second connect"));
        }
        let field = |k: &str| object.get(k).and_then(Amf0Value::as_str).map(str::to_owned);
        let app = field("app").unwrap_or_default();
        let tc_url = field("tcUrl");
        let encoding = object.get("objectEncoding").and_then(Amf0Value::as_number).unwrap_or(0.0);
        let window = self.cfg.window_ack_size;
        let chunk = self.cfg.out_chunk_size.clamp(1, 0x7fff_ffff);
        self.send(message::window_ack_size(window))?;
        self.send(message::set_peer_bandwidth(window, 2))?;
        self.send(message::set_chunk_size(chunk))?;
        self.encoder.set_chunk_size(chunk);
        self.send(message::user_control(message::UC_STREAM_BEGIN, 0))?;
        let properties = Amf0Value::object([
            ("fmsVer", Amf0Value::string("FMS/3,0,1,123")),
            ("capabilities", Amf0Value::Number(31.0)),
            ("mode", Amf0Value::Number(1.0)),
        ]);
        let info = Amf0Value::object([
            ("level", Amf0Value::string("status")),
            ("code", Amf0Value::string("NetConnection.Connect.Success")),
            ("description", Amf0Value::string("Connection succeeded.")),
            ("objectEncoding", Amf0Value::Number(encoding)),
        ]);
        self.send(message::command(
            0,
            &[Amf0Value::string("_result"), Amf0Value::Number(txn), properties, info],
        ))?;
        self.app = Some(app.clone());
        self.push_event(SessionEvent::Connected { app, tc_url })
    }

    fn on_create_stream(&mut self, txn: f64) -> Result<(), RtmpError> {
        if self.streams.len() >= MAX_STREAMS {
            return self.send(message::command(
                0,
                &[
                    Amf0Value::string("_error"),
                    Amf0Value::Number(txn),
                    Amf0Value::Null,
                    status("error", "NetConnection.Call.Failed", "too many streams"),
                ],
            ));
        }
        let id = self.next_stream_id;
        self.next_stream_id = self.next_stream_id.wrapping_add(1).max(1);
        self.streams.push(id);
        self.result(txn, Amf0Value::Number(f64::from(id)))
    }

    fn on_publish(&mut self, stream_id: u32, key: String) -> Result<(), RtmpError> {
        if key.is_empty() {
            self.on_status(stream_id, "error", "NetStream.Publish.BadName", "missing stream name")?;
            self.closing = true;
            return Ok(());
        }
        if self.publish != Publish::Idle {
            return self.on_status(
                stream_id,
                "error",
                "NetStream.Publish.BadConnection",
                "this connection is already publishing",
            );
        }
        self.publish = Publish::Pending { stream_id };
        self.last_metadata = None;
        let app = self.app.clone().unwrap_or_default();
        self.push_event(SessionEvent::PublishRequested { app, stream_key: key, stream_id })
    }

    fn publish_stream(&self) -> Option<u32> {
        match self.publish {
            Publish::Pending { stream_id } | Publish::Publishing { stream_id } => Some(stream_id),
            Publish::Idle => None,
        }
    }

    fn unpublish(&mut self, stream_id: u32) -> Result<(), RtmpError> {
        self.publish = Publish::Idle;
        self.on_status(stream_id, "status", "NetStream.Unpublish.Success", "Stream unpublished.")?;
        self.push_event(SessionEvent::Unpublished)
    }

    /// `_result` with a null command object and one value, for transaction `txn` (none
    /// when the peer sent transaction 0).
    fn result(&mut self, txn: f64, value: Amf0Value) -> Result<(), RtmpError> {
        if txn == 0.0 {
            return Ok(());
        }
        self.send(message::command(
            0,
            &[Amf0Value::string("_result"), Amf0Value::Number(txn), Amf0Value::Null, value],
        ))
    }

    pub(super) fn on_status(
        &mut self,
        stream_id: u32,
        level: &str,
        code: &str,
        description: &str,
    ) -> Result<(), RtmpError> {
        self.send(message::command(
            stream_id,
            &[
                Amf0Value::string("onStatus"),
                Amf0Value::Number(0.0),
                Amf0Value::Null,
                status(level, code, description),
            ],
        ))
    }
}
