// A small, self-contained reader of the node's OpenAPI schema (no CDN, no library): each
// operation with its parameters, request body and responses, schemas expanded from $refs.
"use strict";

(function () {
  function html(tag, props, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "text") node.textContent = v;
      else if (k === "className") node.className = v;
      else node.setAttribute(k, v);
    }
    for (const child of children || []) node.appendChild(child);
    return node;
  }

  function resolve(schema, components, depth) {
    if (!schema || depth > 6) return schema;
    if (schema.$ref) {
      const name = schema.$ref.split("/").pop();
      return resolve(components[name], components, depth + 1);
    }
    const out = Array.isArray(schema) ? [] : {};
    for (const [k, v] of Object.entries(schema)) {
      out[k] = v && typeof v === "object" ? resolve(v, components, depth + 1) : v;
    }
    return out;
  }

  function shape(schema) {
    // A compact example-like outline of a schema: {field: type, ...}.
    if (!schema) return null;
    if (schema.anyOf) return schema.anyOf.map(shape).filter((s) => s !== "null").join(" | ") + " | null";
    if (schema.type === "array") return [shape(schema.items)];
    if (schema.type === "object" || schema.properties) {
      const out = {};
      for (const [k, v] of Object.entries(schema.properties || {})) out[k] = shape(v);
      if (!schema.properties && schema.additionalProperties) out["<key>"] = shape(schema.additionalProperties);
      return out;
    }
    return schema.format ? `${schema.type} (${schema.format})` : schema.type || "any";
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const spec = await (await fetch("/openapi.json")).json();
    const components = (spec.components || {}).schemas || {};
    document.getElementById("api-description").textContent = spec.info.description || "";
    const box = document.getElementById("operations");
    for (const [path, item] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(item)) {
        const section = html("section", { className: "operation", id: op.operationId || path });
        section.appendChild(html("h2", {}, [
          html("code", { className: "method " + method, text: method.toUpperCase() }),
          document.createTextNode(" "), html("code", { text: path }),
        ]));
        section.appendChild(html("p", { text: op.description || op.summary || "" }));
        const params = op.parameters || [];
        if (params.length) {
          const list = html("ul");
          for (const p of params) {
            list.appendChild(html("li", {}, [html("code", { text: `${p.name}` }),
              document.createTextNode(` (${p.in}${p.required ? ", required" : ""}): ` +
                                      (p.description || (p.schema && p.schema.type) || ""))]));
          }
          section.append(html("h3", { text: "parameters" }), list);
        }
        if (op.requestBody) {
          const types = Object.keys(op.requestBody.content || {});
          const first = op.requestBody.content[types[0]];
          section.append(html("h3", { text: "body: " + types.join(", ") }),
            html("pre", { className: "patch", text: JSON.stringify(shape(resolve(first.schema, components, 0)), null, 2) }));
        }
        const table = html("table");
        for (const [code, resp] of Object.entries(op.responses || {})) {
          const content = resp.content || {};
          const type = Object.keys(content)[0] || "";
          const schema = type ? resolve(content[type].schema, components, 0) : null;
          table.appendChild(html("tr", {}, [
            html("td", { text: code }), html("td", { text: resp.description || "" }),
            html("td", { className: "cid", text: type }),
            html("td", {}, [html("pre", { text: schema ? JSON.stringify(shape(schema), null, 1) : "" })]),
          ]));
        }
        section.append(html("h3", { text: "responses" }), table);
        box.appendChild(section);
      }
    }
    document.body.dataset.operations = String(box.children.length);
  });
})();
