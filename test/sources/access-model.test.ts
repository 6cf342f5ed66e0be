import { expect } from "chai";

import { modelOfAccess, modelOfUri } from "../../src/sources/access-model.js";

describe("modelOfUri", () => {
  const models: [string, string, string][] = [
    ["/predictions/mnist", "mnist", "default"],
    ["/predictions/resnet-18/2.0", "resnet-18", "2.0"],
    ["/predictions/mnist/", "mnist", "default"],
    ["/predictions/mnist?topk=5", "mnist", "default"],
    ["/explanations/mnist/1.0", "mnist", "1.0"],
    ["/v1/models/sdxl:predict", "sdxl", "default"],
    ["/v1/models/sdxl:explain", "sdxl", "default"],
    ["/v2/models/bert/infer", "bert", "default"],
    ["/v2/models/bert/versions/3/infer", "bert", "3"],
    ["/predictions/my%20model", "my model", "default"],
    ["/predictions/./mnist", "mnist", "default"],
    ["http://torchserve:8080/predictions/mnist", "mnist", "default"],
  ];
  for (const [uri, model, version] of models) {
    it(`reads ${uri} as ${model} version ${version}`, () => {
      expect(modelOfUri(uri)).to.deep.equal({ model, version });
    });
  }

  const notModels = [
    "/ping",
    "/metrics",
    "/metrics?name[]=Requests2XX",
    "/api-description",
    "/models",
    "/models/mnist",
    "/models/mnist/1.0",
    "/models?url=mnist.mar",
    "/predictions",
    "/predictions/",
    "/predictions/a/b/c",
    "/predictions/%zz",
    "/v2/models/bert",
    "/",
    "",
    "org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions",
  ];
  for (const uri of notModels) {
    it(`finds no model request in ${JSON.stringify(uri)}`, () => {
      expect(modelOfUri(uri)).to.equal(undefined);
    });
  }
});

describe("modelOfAccess", () => {
  it("takes any method TorchServe runs a model for", () => {
    for (const method of ["POST", "GET", "PUT"]) {
      expect(modelOfAccess({ method, uri: "/predictions/m" }), method).to.deep.equal({
        model: "m",
        version: "default",
      });
    }
  });

  it("finds no model in OPTIONS (TorchServe's API description) or a gRPC call", () => {
    expect(modelOfAccess({ method: "OPTIONS", uri: "/predictions/m" })).to.equal(undefined);
    expect(modelOfAccess({ method: "gRPC", uri: "/predictions/m" })).to.equal(undefined);
  });
});
