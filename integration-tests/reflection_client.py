"""An independent gateway-like client: it has no proto files and learns the API by gRPC server
reflection (grpcio-reflection speaks v1alpha), then calls the catalog dynamically.

Usage: reflection_client.py HOST:PORT TOKEN
Prints one JSON line: the services listed, the services of ListServices, and a GetService."""

import json
import sys

import grpc
from google.protobuf import descriptor_pool, json_format
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def call(channel, pool, method_full_name, request_fields, token):
    service_name, method_name = method_full_name.rsplit("/", 1)
    method = pool.FindServiceByName(service_name).FindMethodByName(method_name)
    request_class = GetMessageClass(method.input_type)
    response_class = GetMessageClass(method.output_type)
    stub = channel.unary_unary(
        "/" + method_full_name,
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    request = json_format.ParseDict(request_fields, request_class())
    response = stub(request, metadata=[("authorization", "Bearer " + token)], timeout=10)
    return json_format.MessageToDict(response, preserving_proto_field_name=True)


def main():
    target, token = sys.argv[1], sys.argv[2]
    with grpc.insecure_channel(target) as channel:
        reflection = ProtoReflectionDescriptorDatabase(channel)
        services = sorted(reflection.get_services())
        pool = descriptor_pool.DescriptorPool(reflection)
        listed = call(channel, pool, "caseway.catalog.v1.CatalogService/ListServices", {}, token)
        first = listed["services"][0]["id"]
        got = call(
            channel, pool, "caseway.catalog.v1.CatalogService/GetService", {"id": first}, token
        )
        try:
            call(channel, pool, "caseway.catalog.v1.CatalogService/GetService", {"id": "x"}, token)
            bad_id = "OK"
        except grpc.RpcError as error:
            bad_id = error.code().name
        print(
            json.dumps(
                {
                    "services": services,
                    "listed": [s["code"] for s in listed["services"]],
                    "got": got["service"]["code"],
                    "bad_id": bad_id,
                }
            )
        )


if __name__ == "__main__":
    main()
