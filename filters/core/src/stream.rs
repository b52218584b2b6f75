//! One HTTP stream of a filter: the filter and its [`Exchange`], driven callback by callback.
//!
//! The shim drives streams this way in Envoy, and tests drive them the same way over a
//! [`crate::mock::MockHost`], so both run the filter through the same request model.

use crate::{CallResponse, Ctx, Decision, Exchange, Host, HttpFilter};

/// A filter's stream and what is known about its exchange.
#[derive(Debug)]
pub struct Stream<H> {
    filter: H,
    exchange: Exchange,
    /// The filter paused the request at its headers and has not let it go on yet: the
    /// callback that does (a body chunk) commits it.
    held: bool,
}

impl<H: HttpFilter> Stream<H> {
    /// A new stream for `filter`.
    pub fn new(filter: H) -> Self {
        Self {
            filter,
            exchange: Exchange::new(),
            held: false,
        }
    }

    /// The filter.
    pub fn filter(&self) -> &H {
        &self.filter
    }

    /// The exchange as the filter left it.
    pub fn exchange(&self) -> &Exchange {
        &self.exchange
    }

    /// Request headers arrived: the filter decides, and if it lets the request go on, commits
    /// ([`HttpFilter::commit_request`]) in the same callback.
    pub fn on_request_headers(&mut self, host: &mut dyn Host, end_of_stream: bool) -> Decision {
        let mut ctx = Ctx::new(host, &self.exchange);
        match self.filter.on_request_headers(&mut ctx, end_of_stream) {
            Decision::Continue => self.filter.commit_request(&mut ctx),
            Decision::Pause => {
                self.held = true;
                Decision::Pause
            }
            other => other,
        }
    }

    /// A chunk of the request body arrived (`body_size` buffered so far). A request the filter
    /// held at its headers is committed when the filter lets it go on.
    pub fn on_request_body(
        &mut self,
        host: &mut dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Decision {
        let mut ctx = Ctx::new(host, &self.exchange);
        match self
            .filter
            .on_request_body(&mut ctx, body_size, end_of_stream)
        {
            Decision::Continue if self.held => {
                self.held = false;
                self.filter.commit_request(&mut ctx)
            }
            Decision::Respond(response) => {
                self.held = false;
                Decision::Respond(response)
            }
            other => other,
        }
    }

    /// Response headers arrived.
    pub fn on_response_headers(&mut self, host: &mut dyn Host, end_of_stream: bool) -> Decision {
        let mut ctx = Ctx::new(host, &self.exchange);
        self.filter.on_response_headers(&mut ctx, end_of_stream)
    }

    /// The stream ended.
    pub fn on_log(&mut self, host: &mut dyn Host) {
        let mut ctx = Ctx::new(host, &self.exchange);
        self.filter.on_log(&mut ctx);
    }

    /// The answer to a call this stream dispatched; a request it resumes is committed.
    pub fn on_call_response(
        &mut self,
        host: &mut dyn Host,
        token: u32,
        response: Option<CallResponse>,
    ) -> Decision {
        let mut ctx = Ctx::new(host, &self.exchange);
        match self.filter.on_call_response(&mut ctx, token, response) {
            Decision::Continue => {
                self.held = false;
                self.filter.commit_request(&mut ctx)
            }
            other => other,
        }
    }
}
