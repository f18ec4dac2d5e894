"""The official `openai` Python client against the gridlease gateway.

Usage: python3 openai_client.py BASE_URL MODEL
Exits non-zero (with the failed assertion) when the gateway does not behave like OpenAI's API.
"""

import sys

import openai

base, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base + "/v1", api_key="not-needed", max_retries=0, timeout=20)

models = [m.id for m in client.models.list()]
assert model in models, models

chat = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
assert chat.choices[0].message.content, chat
assert chat.usage is not None and chat.usage.completion_tokens > 0, chat.usage

text = ""
usage = None
chunks = 0
stream = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "hi"}], stream=True
)
for chunk in stream:
    chunks += 1
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
    if chunk.usage is not None:
        usage = chunk.usage
assert chunks > 1 and text, (chunks, text)
assert usage is not None and usage.completion_tokens > 0, "the gateway asks for usage on streams"

done = client.completions.create(model=model, prompt="hi")
assert done.choices[0].text, done

emb = client.embeddings.create(model=model, input="hi")
assert len(emb.data[0].embedding) > 0, emb

try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    raise AssertionError("an unknown model was answered")
except openai.NotFoundError as e:
    assert e.code == "model_not_found", e.code

print("openai client: models, chat, stream (%d chunks), completions, embeddings, errors: ok" % chunks)
