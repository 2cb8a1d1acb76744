"""Pipeline runs: a root execution and everything it led to, kept current by the recorder
(``record``), summarized by pure rules (``status``), read by pages and the API (``queries``) and
sent again by operators (``resend``)."""
