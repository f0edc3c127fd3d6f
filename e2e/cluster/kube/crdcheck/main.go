// crdcheck judges AIService objects with the API server's own code for custom resources, with no server:
// the CRD's validation (structural schema, CEL compilation and cost), then for each object what a create runs
// (unknown fields, defaults, list sets and maps, metadata, the OpenAPI schema, CEL rules).
//
// Usage: crdcheck CRD.yaml < objects.json, where objects.json is [{"id": ..., "object": {...}}]. It prints
// {"crd": [errors], "objects": {id: [errors]}}; an object with no errors is accepted. It lives in the control
// plane's module so that it is built from the same k8s.io modules as the kube-apiserver of the e2e cluster.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

type object struct {
	ID     string                 `json:"id"`
	Object map[string]interface{} `json:"object"`
}

type report struct {
	CRD     []string            `json:"crd"`
	Objects map[string][]string `json:"objects"`
}

func main() {
	if len(os.Args) != 2 {
		fail(fmt.Errorf("usage: crdcheck CRD.yaml < objects.json"))
	}
	crd, err := readCRD(os.Args[1])
	fail(err)
	out := report{CRD: []string{}, Objects: map[string][]string{}}
	ctx := context.Background()
	for _, e := range crdvalidation.ValidateCustomResourceDefinition(ctx, crd) {
		out.CRD = append(out.CRD, e.Error())
	}
	props := crd.Spec.Validation.OpenAPIV3Schema
	if v := crd.Spec.Versions[0].Schema; v != nil {
		props = v.OpenAPIV3Schema
	}
	structural, err := structuralschema.NewStructural(props)
	fail(err)
	validator, _, err := apiservervalidation.NewSchemaValidator(props)
	fail(err)
	celValidator := cel.NewValidator(structural, true, celconfig.PerCallLimit)

	input, err := io.ReadAll(os.Stdin)
	fail(err)
	var objects []object
	// The API server's own JSON reading: whole numbers become int64, as in a request.
	fail(utiljson.Unmarshal(input, &objects))
	for _, o := range objects {
		obj := runtime.DeepCopyJSON(o.Object)
		var errs field.ErrorList
		unknown := structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true}
		for _, path := range pruning.PruneWithOptions(obj, structural, true, unknown) {
			errs = append(errs, field.Invalid(field.NewPath(path), "", "unknown field"))
		}
		structuraldefaulting.Default(obj, structural)
		errs = append(errs, listtype.ValidateListSetsAndMaps(nil, structural, obj)...)
		errs = append(errs, schemaobjectmeta.Validate(nil, obj, structural, true)...)
		errs = append(errs, apiservervalidation.ValidateCustomResource(nil, obj, validator)...)
		celErrs, _ := celValidator.Validate(ctx, nil, structural, obj, nil, celconfig.RuntimeCELCostBudget)
		errs = append(errs, celErrs...)
		messages := []string{}
		for _, e := range errs {
			messages = append(messages, e.Error())
		}
		out.Objects[o.ID] = messages
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	fail(enc.Encode(out))
}

func readCRD(path string) (*apiextensions.CustomResourceDefinition, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var v1crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(raw, &v1crd); err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := apiextensions.AddToScheme(scheme); err != nil {
		return nil, err
	}
	scheme.Default(&v1crd)
	var crd apiextensions.CustomResourceDefinition
	if err := scheme.Convert(&v1crd, &crd, nil); err != nil {
		return nil, err
	}
	return &crd, nil
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "crdcheck:", err)
		os.Exit(2)
	}
}
