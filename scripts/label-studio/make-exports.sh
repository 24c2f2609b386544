#!/usr/bin/env bash
# Makes the Label Studio export files caravan's import is tested against, with Label Studio itself:
# installs the pinned label-studio from PyPI in a venv outside the checkout, starts it on a
# throwaway data directory, creates two projects through its API (sentiment with a TextArea before
# the Choices, and named entities with relations over non-ASCII text), imports tasks with
# predictions, annotates some, and saves every export kind (JSON, JSON_MIN, CSV, and a snapshot
# with predictions in full) into OUT_DIR. Then it imports caravan's own Label Studio exports
# (caravan-*.label-studio.json in OUT_DIR) into projects with the same configs and saves Label
# Studio's snapshot of them: the round trip caravan -> Label Studio -> caravan.
#
# Usage: scripts/label-studio/make-exports.sh OUT_DIR [VENV_DIR]
set -euo pipefail
out="${1:?usage: make-exports.sh OUT_DIR [VENV_DIR]}"
venv="${2:-${HOME:-/tmp}/.cache/caravan/label-studio}"
version="1.23.2"
port=8099
token="caravantesttoken0123456789abcdef01234567"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

if ! "$venv/bin/label-studio" --version 2>/dev/null | grep -q "$version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "label-studio==$version"
fi

data="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$data"' EXIT
export LABEL_STUDIO_BASE_DATA_DIR="$data"
LABEL_STUDIO_USERNAME=requester@example.com LABEL_STUDIO_PASSWORD=caravan-test-pass \
  LABEL_STUDIO_USER_TOKEN="$token" "$venv/bin/label-studio" start --no-browser -p "$port" \
  > "$data/server.log" 2>&1 &
server=$!
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/health" > /dev/null && break
  sleep 1
done
# Label Studio 1.23 turns legacy API tokens off for new organisations; this throwaway one turns
# them back on so the script can call the API with a fixed token.
DJANGO_SETTINGS_MODULE=core.settings.label_studio "$venv/bin/python" - <<'PY' 2> /dev/null
import os, sys
sys.path.insert(0, os.path.dirname(__import__('label_studio').__file__))
import django
django.setup()
from jwt_auth.models import JWTSettings
from organizations.models import Organization
for organization in Organization.objects.all():
    settings, _ = JWTSettings.objects.get_or_create(organization=organization)
    settings.legacy_api_tokens_enabled = True
    settings.save()
PY

api() {
  local method="$1" path="$2"
  shift 2
  curl -sf -X "$method" -H "Authorization: Token $token" -H "Content-Type: application/json" \
    "http://127.0.0.1:$port/api$path" "$@"
}
id_of() { python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])'; }
task_ids() { python3 -c 'import json, sys; print(" ".join(str(t["id"]) for t in json.load(sys.stdin)["tasks"]))'; }

# Sentiment: a TextArea before the Choices, so results do not line up with the schema by position.
sentiment=$(api POST /projects -d @- <<'JSON' | id_of
{"title": "Sentiment", "label_config": "<View><Text name=\"review\" value=\"$text\"/><TextArea name=\"note\" toName=\"review\"/><Choices name=\"sentiment\" toName=\"review\" choice=\"single\"><Choice value=\"Positive\"/><Choice value=\"Negative\"/></Choices></View>"}
JSON
)
api POST "/projects/$sentiment/import" -d @- > /dev/null <<'JSON'
[{"data": {"text": "Battery lasts two days, love it."}, "predictions": [{"model_version": "bert-v2", "score": 0.93, "result": [{"from_name": "sentiment", "to_name": "review", "type": "choices", "value": {"choices": ["Positive"]}}]}]},
 {"data": {"text": "Broke after a week — très déçu."}, "predictions": [{"model_version": "bert-v2", "score": 0.71, "result": [{"from_name": "sentiment", "to_name": "review", "type": "choices", "value": {"choices": ["Negative"]}}]}]},
 {"data": {"text": "Does what it says."}}]
JSON
set -- $(api GET "/tasks?project=$sentiment" | task_ids)
api POST "/tasks/$1/annotations" -d '{"result": [{"from_name": "note", "to_name": "review", "type": "textarea", "value": {"text": ["mentions battery"]}}, {"from_name": "sentiment", "to_name": "review", "type": "choices", "value": {"choices": ["Positive"]}}]}' > /dev/null
api POST "/tasks/$2/annotations" -d '{"result": [{"from_name": "sentiment", "to_name": "review", "type": "choices", "value": {"choices": ["Negative"]}}]}' > /dev/null

# Named entities with a relation, over text with characters outside the BMP and accents, so
# offsets in UTF-16 units and in characters differ.
entities=$(api POST /projects -d @- <<'JSON' | id_of
{"title": "Entities", "label_config": "<View><Relations><Relation value=\"met\"/></Relations><Labels name=\"label\" toName=\"text\"><Label value=\"PER\"/><Label value=\"LOC\"/></Labels><Text name=\"text\" value=\"$text\"/></View>"}
JSON
)
api POST "/projects/$entities/import" -d @- > /dev/null <<'JSON'
[{"data": {"text": "🎉 Zoë met Ada in Zürich."}},
 {"data": {"text": "Alan lived in Bletchley."}}]
JSON
set -- $(api GET "/tasks?project=$entities" | task_ids)
api POST "/tasks/$1/annotations" -d @- > /dev/null <<'JSON'
{"result": [
  {"id": "zoe", "from_name": "label", "to_name": "text", "type": "labels", "value": {"start": 2, "end": 5, "text": "Zoë", "labels": ["PER"]}},
  {"id": "ada", "from_name": "label", "to_name": "text", "type": "labels", "value": {"start": 10, "end": 13, "text": "Ada", "labels": ["PER"]}},
  {"id": "zurich", "from_name": "label", "to_name": "text", "type": "labels", "value": {"start": 17, "end": 23, "text": "Zürich", "labels": ["LOC"]}},
  {"from_id": "zoe", "to_id": "ada", "type": "relation", "direction": "right", "labels": ["met"]}]}
JSON

# A snapshot export (`POST /api/projects/{id}/exports`) with predictions in full, not as ids;
# written to the file named $2 once Label Studio has made it.
snapshot() {
  local id="$1" file="$2" export status
  export=$(api POST "/projects/$id/exports" -d '{"title": "caravan", "serialization_options": {"predictions": {"only_id": false}}}' | id_of)
  for _ in $(seq 1 60); do
    status=$(api GET "/projects/$id/exports/$export" | python3 -c 'import json, sys; print(json.load(sys.stdin)["status"])')
    [ "$status" = completed ] && break
    sleep 1
  done
  [ "$status" = completed ] || { echo "Label Studio did not finish the snapshot of project $id: $status" >&2; exit 1; }
  api GET "/projects/$id/exports/$export/download?exportType=JSON" -o "$file"
}

for project in sentiment entities; do
  id="${!project}"
  for kind in JSON JSON_MIN CSV; do
    api GET "/projects/$id/export?exportType=$kind" -o "$out/$project.$(echo "$kind" | tr 'A-Z_' 'a-z-').export"
  done
  snapshot "$id" "$out/$project.snapshot.export"
  api GET "/projects/$id" | python3 -c 'import json, sys; print(json.load(sys.stdin)["label_config"])' > "$out/$project.config.xml"
done

# The round trip: what caravan exports (caravan-*.label-studio.json, which a caravan test keeps
# equal to its exporter's output) imported into Label Studio projects with the same configs,
# then exported again by Label Studio, annotations and predictions in full.
for project in sentiment entities; do
  config=$(python3 -c 'import json, sys; print(json.dumps(open(sys.argv[1]).read().strip()))' "$out/$project.config.xml")
  id=$(api POST /projects -d "{\"title\": \"Round trip $project\", \"label_config\": $config}" | id_of)
  api POST "/projects/$id/import" --data-binary @"$out/caravan-$project.label-studio.json" > /dev/null
  snapshot "$id" "$out/roundtrip-$project.snapshot.export"
done
echo "Label Studio $version exports written to $out"
