// Reads a JSON list of Gateway API objects on stdin; writes, for each, the list of what
// Gateway API's schemas (@kubernetes-models/gateway-api) refuse in it.
import { readFileSync } from "node:fs";

const docs = JSON.parse(readFileSync(0, "utf8"));
const answers = [];
for (const doc of docs) {
  let model;
  try {
    model = await import(`@kubernetes-models/gateway-api/${doc.apiVersion}/${doc.kind}`);
  } catch {
    answers.push([`no schema for ${doc.apiVersion} ${doc.kind}`]);
    continue;
  }
  try {
    new model[doc.kind](doc).validate();
    answers.push([]);
  } catch (error) {
    answers.push(String(error.message).split(", "));
  }
}
process.stdout.write(JSON.stringify(answers));
