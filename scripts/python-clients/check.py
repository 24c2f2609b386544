"""Drives a caravan gateway with the official `openai` client and LangChain's ChatOpenAI and
OpenAIEmbeddings, unchanged.

Usage: check.py --gateway http://127.0.0.1:PORT/v1 --api-key KEY --payer ADDRESS --model NAME
                --upstream-port P
                [--agent AGENT] [--embedding-model NAME --models-dir DIR]

It first starts a stand-in OpenAI-compatible upstream on 127.0.0.1:P (the model NAME must have
been registered with `caravan model upstream --url http://127.0.0.1:P/v1`), which answers
"echo: <the last user message>" one word per streamed chunk. Then it checks, with the real clients
and the payer's API key KEY (made with `caravan key issue`): the model list, a chat completion with
its usage and signed receipt header, streaming with and without `include_usage`, an idempotent
retry, OpenAI's error classes for a bad key and an unknown model, an agent composing the model
(when given), and LangChain's invoke and stream. With an embedding model (all-MiniLM-L6-v2, registered at 100 base
units per call and one per token), it checks `embeddings.create` (the client's default base64 and
float, text and token ids) and LangChain's OpenAIEmbeddings against an independent numpy
computation of the model from the weights in DIR, and that the payer was charged exactly for the
tokens read. It prints one JSON line per check and exits non-zero on the first failure.
"""

import argparse
import base64
import json
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import openai
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

from minilm_reference import MiniLM


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
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--payer", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--agent", help="an agent composing MODEL, called once by name")
    parser.add_argument("--embedding-model", help="an all-MiniLM-L6-v2 embedding model's name")
    parser.add_argument("--models-dir", help="the folder holding all-MiniLM-L6-v2's weights")
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", args.upstream_port), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    key = args.api_key
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

    if args.embedding_model:
        check_embeddings(args, client, key)


def available(gateway, key):
    request = urllib.request.Request(gateway + "/balance", headers={"authorization": f"Bearer {key}"})
    return int(json.load(urllib.request.urlopen(request))["balances"][0]["available"])


def close(got, want, what):
    gap = float(np.max(np.abs(np.asarray(got, dtype=np.float64) - want)))
    assert gap < 1e-4, f"{what}: differs from the numpy reference by {gap}"
    return gap


def check_embeddings(args, client, key):
    reference = MiniLM(f"{args.models_dir}/all-MiniLM-L6-v2")
    model = args.embedding_model
    texts = ["The cat sat on the mat.", "caravan pays the people who label data",
             "A much longer sentence, with punctuation; and numbers like 42 and 1999!"]
    want = reference.embed(texts)
    tokens_read = 0
    calls = 0
    before = available(args.gateway, key)

    # The client's default asks for base64 and decodes it itself.
    result = client.embeddings.create(model=model, input=texts)
    assert [d.index for d in result.data] == [0, 1, 2]
    gaps = [close(d.embedding, w, f"base64 input {i}") for i, (d, w) in enumerate(zip(result.data, want))]
    assert result.usage.prompt_tokens == sum(len(reference.tokens(t)) for t in texts), result.usage
    tokens_read += result.usage.prompt_tokens
    calls += 1
    report("embeddings.create", inputs=len(result.data), dimensions=len(result.data[0].embedding),
           prompt_tokens=result.usage.prompt_tokens, largest_gap=max(gaps))

    floats = client.embeddings.create(model=model, input=texts[0], encoding_format="float")
    close(floats.data[0].embedding, want[0], "float")
    ids = reference.tokens(texts[1])[1:-1]
    by_ids = client.embeddings.create(model=model, input=ids, encoding_format="float")
    close(by_ids.data[0].embedding, want[1], "token ids")
    tokens_read += floats.usage.prompt_tokens + by_ids.usage.prompt_tokens
    calls += 2
    report("embeddings.create float and token ids", ids=len(ids))

    try:
        client.embeddings.create(model=model, input=[reference.tokenizer.get_vocab_size()])
        raise AssertionError("a token id outside the vocabulary was accepted")
    except openai.BadRequestError as error:
        assert error.param == "input", error.body
        report("BadRequestError", param=error.param)

    # LangChain's default counts tokens with tiktoken, OpenAI's own tokenizer, which fetches its
    # vocabulary from the internet and means nothing to another model; OpenAI-compatible servers
    # are used with that check off.
    embeddings = OpenAIEmbeddings(model=model, base_url=args.gateway, api_key=key, max_retries=0,
                                  check_embedding_ctx_length=False)
    documents = embeddings.embed_documents(texts[:2])
    query = embeddings.embed_query(texts[2])
    for got, w in zip(documents + [query], want):
        close(got, w, "LangChain")
    tokens_read += sum(len(reference.tokens(t)) for t in texts)
    calls += 2
    report("langchain OpenAIEmbeddings", documents=len(documents), query=len(query))

    spent = before - available(args.gateway, key)
    assert spent == 100 * calls + tokens_read, (spent, calls, tokens_read)
    report("embeddings charged", spent=spent, calls=calls, tokens=tokens_read)


if __name__ == "__main__":
    try:
        main()
    except AssertionError as error:
        print(f"check failed: {error}", file=sys.stderr)
        sys.exit(1)
