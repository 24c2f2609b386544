"""Drives a caravan gateway with the official `openai` client and LangChain's ChatOpenAI, unchanged.

Usage: check.py --gateway http://127.0.0.1:PORT/v1 --payer ADDRESS --model NAME --upstream-port P
                [--agent AGENT]

It first starts a stand-in OpenAI-compatible upstream on 127.0.0.1:P (the model NAME must have
been registered with `caravan model upstream --url http://127.0.0.1:P/v1`), which answers
"echo: <the last user message>" one word per streamed chunk. Then it issues an API key for the
payer and checks, with the real clients: the model list, a chat completion with its usage and
signed receipt header, streaming with and without `include_usage`, an idempotent retry, OpenAI's
error classes for a bad key and an unknown model, an agent composing the model (when given), and
LangChain's invoke and stream. It prints
one JSON line per check and exits non-zero on the first failure.
"""

import argparse
import base64
import json
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
from langchain_openai import ChatOpenAI


class Upstream(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat server that echoes the last user message."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        text = "echo: " + body["messages"][-1]["content"]
        words = text.split(" ")
        usage = {"prompt_tokens": 9, "completion_tokens": len(words), "total_tokens": 9 + len(words)}
        base = {"id": "up-1", "created": 1, "model": body["model"]}
        if not body.get("stream"):
            reply = dict(base, object="chat.completion", usage=usage, choices=[
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}])
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        for i, word in enumerate(words):
            delta = {"content": word if i == 0 else " " + word}
            if i == 0:
                delta["role"] = "assistant"
            chunk = dict(base, object="chat.completion.chunk",
                         choices=[{"index": 0, "delta": delta, "finish_reason": None}])
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        last = dict(base, object="chat.completion.chunk",
                    choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}])
        self.wfile.write(f"data: {json.dumps(last)}\n\n".encode())
        if body.get("stream_options", {}).get("include_usage"):
            chunk = dict(base, object="chat.completion.chunk", choices=[], usage=usage)
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


def report(check, **figures):
    print(json.dumps(dict(check=check, **figures)), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--payer", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--agent", help="an agent composing MODEL, called once by name")
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", args.upstream_port), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    request = urllib.request.Request(
        args.gateway + "/keys", method="POST",
        data=json.dumps({"payer": args.payer, "name": "python clients"}).encode(),
        headers={"content-type": "application/json"})
    key = json.load(urllib.request.urlopen(request))["key"]
    client = openai.OpenAI(base_url=args.gateway, api_key=key, max_retries=0)

    models = [m.id for m in client.models.list()]
    assert args.model in models, models
    report("models.list", models=models)

    messages = [{"role": "user", "content": "hello caravan"}]
    raw = client.chat.completions.with_raw_response.create(model=args.model, messages=messages)
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello caravan", completion
    assert completion.model == args.model, completion.model
    assert completion.usage.completion_tokens == 3, completion.usage
    receipt = json.loads(base64.b64decode(raw.headers["caravan-receipt"]))
    assert raw.headers["caravan-receipt-signature"].startswith("0x")
    assert receipt["payer"] == args.payer.lower(), receipt
    report("chat.completions.create", content=completion.choices[0].message.content,
           charged=receipt["charged"], node=receipt["node"])

    chunks = list(client.chat.completions.create(model=args.model, messages=messages, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: hello caravan", text
    assert all(c.usage is None for c in chunks), "usage shown though not asked for"
    report("stream", chunks=len(chunks), text=text)

    chunks = list(client.chat.completions.create(
        model=args.model, messages=messages, stream=True, stream_options={"include_usage": True}))
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and usage[0].completion_tokens == 3, usage
    report("stream.include_usage", completion_tokens=usage[0].completion_tokens)

    first = client.chat.completions.with_raw_response.create(
        model=args.model, messages=messages, extra_headers={"Idempotency-Key": "retry-1"})
    again = client.chat.completions.with_raw_response.create(
        model=args.model, messages=messages, extra_headers={"Idempotency-Key": "retry-1"})
    assert first.parse().id == again.parse().id
    assert again.headers.get("idempotent-replayed") == "true"
    report("idempotent retry", id=first.parse().id)

    try:
        openai.OpenAI(base_url=args.gateway, api_key="crv_wrong", max_retries=0).models.list()
        raise AssertionError("a bad key was accepted")
    except openai.AuthenticationError as error:
        assert error.code == "invalid_api_key", error.body
        report("AuthenticationError", code=error.code)
    try:
        client.chat.completions.create(model="no-such-model", messages=messages)
        raise AssertionError("an unknown model was accepted")
    except openai.NotFoundError as error:
        assert error.code == "model_not_found", error.body
        report("NotFoundError", code=error.code)

    if args.agent:
        answer = client.chat.completions.create(model=args.agent, messages=messages)
        assert answer.model == args.agent, answer.model
        assert answer.choices[0].message.content == "echo: hello caravan", answer
        report("agent", model=answer.model)

    chat = ChatOpenAI(base_url=args.gateway, api_key=key, model=args.model, max_retries=0)
    answer = chat.invoke("hello langchain")
    assert answer.content == "echo: hello langchain", answer
    streamed = "".join(part.content for part in chat.stream("hello stream"))
    assert streamed == "echo: hello stream", streamed
    report("langchain ChatOpenAI", invoke=answer.content, stream=streamed)
    server.shutdown()


if __name__ == "__main__":
    try:
        main()
    except AssertionError as error:
        print(f"check failed: {error}", file=sys.stderr)
        sys.exit(1)
